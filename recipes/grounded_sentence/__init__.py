"""Visually grounded sentence encoder (Merkx & Frank 2019): a character-level caption encoder trained only on
image-caption retrieval, evaluated on retrieval and on STS-B.

A YAML composition of :class:`polymodal.System`: towers ``CharGRUEncoder`` (text plugin) and ``ImageProjection``
(image plugin), the ``GroundingLoss`` (:mod:`polymodal.losses`), grouped Recall@k
(:class:`polymodal.metrics.step.Retrieval`) and STS-B dev at test (:class:`polymodal.callbacks.EvaluateSTS`), data
from :class:`polymodal.data.Captions`. Configs: ``tiny.yaml`` (seconds), ``flickr8k.yaml`` (CPU),
``flickr8k_paper.yaml`` (the paper's size, GPU); the published table: ``polymodal sweep
recipes/grounded_sentence/sweep.yaml``.
"""

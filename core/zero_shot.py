"""Zero-shot image classification with any aligned text and image towers (CLIP-style prompting).

Each label becomes a class vector: the label is written into every template (``"a photo of a
{}."``), the texts are embedded by the text tower, L2-normalised, averaged and normalised again
(Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision",
section 3.1.4). An image is assigned the label whose class vector has the highest cosine with the
image tower's embedding. Works for any pair of towers that embed into one space: the
``grounded_sentence`` caption and image towers, CG-VLM stage-1 towers, or two exported
``ContrastiveSystem`` columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_TEMPLATES", "ZeroShotClassifier"]

#: A small CLIP-style template set (label inserted at ``{}``).
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.", "a picture of a {}.", "a {}.")


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ZeroShotClassifier:
    """Classify images by cosine similarity with label prompts.

    Args:
        text_model: the text tower (anything with ``encode(list[str]) -> (N, D)``).
        image_model: the image tower (``encode(images) -> (N, D)``, same ``D``).
        templates: prompt templates with one ``{}`` for the label.
        labels: class names (may also be given to :meth:`set_labels` or per call).
        batch_size: encoding batch size.

    Example:
        >>> clf = ZeroShotClassifier(caption_model, image_model, ["a photo of a {}."], labels=["dog", "bike"])
        >>> clf.predict(["img1.jpg", "img2.jpg"])
        ['dog', 'bike']
    """

    def __init__(
        self,
        text_model: Any,
        image_model: Any,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        labels: Sequence[str] | None = None,
        batch_size: int = 64,
    ) -> None:
        if isinstance(templates, str):
            templates = [templates]
        templates = list(templates)
        if not templates:
            raise ValueError("ZeroShotClassifier needs at least one template")
        for i, t in enumerate(templates):
            if not isinstance(t, str) or t.count("{}") != 1:
                raise ValueError(f"template {i} ({t!r}) must be a string with exactly one '{{}}' for the label")
        t_dim, i_dim = getattr(text_model, "dim", None), getattr(image_model, "dim", None)
        if t_dim is not None and i_dim is not None and t_dim != i_dim:
            raise ValueError(f"the towers are not aligned: text embeds in {t_dim} dimensions, images in {i_dim}")
        self.text_model, self.image_model = text_model, image_model
        self.templates, self.batch_size = templates, batch_size
        self.labels: list[str] = []
        self.class_embeddings = np.zeros((0, 0), dtype=np.float32)
        if labels is not None:
            self.set_labels(labels)

    def set_labels(self, labels: Sequence[str]) -> ZeroShotClassifier:
        """Embed the class prompts of ``labels`` -> :attr:`class_embeddings` ``(C, D)``; returns ``self``."""
        if isinstance(labels, str):
            raise TypeError("labels must be a list of class names, got a single string")
        labels = list(labels)
        if len(labels) < 2:
            raise ValueError(f"zero-shot classification needs at least 2 labels, got {len(labels)}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be distinct, got {labels}")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise ValueError(f"label {i} must be a non-empty string, got {label!r}")
        prompts = [t.format(label) for label in labels for t in self.templates]
        emb = _normalise(np.asarray(self.text_model.encode(prompts, batch_size=self.batch_size), dtype=np.float32))
        emb = emb.reshape(len(labels), len(self.templates), -1).mean(axis=1)  # (C, D)
        self.labels, self.class_embeddings = labels, _normalise(emb).astype(np.float32)
        return self

    def scores(self, images: Sequence[Any], labels: Sequence[str] | None = None) -> np.ndarray:
        """Cosine of every image with every class vector -> ``(N, C)``."""
        if labels is not None:
            self.set_labels(labels)
        if not self.labels:
            raise ValueError("no labels: pass labels= to ZeroShotClassifier, set_labels() or this call")
        images = list(images)
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        img = _normalise(np.asarray(self.image_model.encode(images, batch_size=self.batch_size), dtype=np.float32))
        if img.shape[1] != self.class_embeddings.shape[1]:
            raise ValueError(
                f"the towers are not aligned: images embed in {img.shape[1]} dimensions, "
                f"text in {self.class_embeddings.shape[1]}"
            )
        return img @ self.class_embeddings.T

    def predict_proba(self, images: Sequence[Any], temperature: float = 0.01) -> np.ndarray:
        """Softmax over classes of ``scores / temperature`` -> ``(N, C)`` (CLIP's logit scale is 1/0.01)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        logits = self.scores(images) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, images: Sequence[Any], labels: Sequence[str] | None = None) -> list[str]:
        """The best label of each image."""
        s = self.scores(images, labels)
        return [self.labels[i] for i in s.argmax(axis=1)]

    def evaluate(self, images: Sequence[Any], targets: Sequence[str]) -> dict[str, float]:
        """Accuracy (and the majority-class baseline) of :meth:`predict` against ``targets`` labels."""
        images, targets = list(images), list(targets)
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        if not images:
            raise ValueError("evaluate() needs at least one image")
        unknown = sorted(set(targets) - set(self.labels))
        if unknown:
            raise ValueError(f"targets name labels the classifier does not know: {unknown[:5]}")
        pred = self.predict(images)
        correct = np.mean([p == t for p, t in zip(pred, targets)])
        majority = max(targets.count(label) for label in set(targets)) / len(targets)
        return {"accuracy": float(correct), "majority_baseline": float(majority), "n": float(len(targets))}

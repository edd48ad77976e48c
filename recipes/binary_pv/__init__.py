"""Binary Paragraph Vector and Disambiguated Skip-gram (Grzegorczyk's dissertation "Vector representations of
text data in deep learning", 2019; Grzegorczyk & Kurdziel, arXiv:1611.01116 and EMNLP 2018).

The encoders are the text plugin's :class:`~polymodal.plugins.text.static.BinaryParagraphVector` and
:class:`~polymodal.plugins.text.static.SenseSkipGram`; the recipe's own parts are the Choi segment corpus
(:class:`ChoiSegments`: relevance = same Brown source text), the peer comparison (``compare.py``: gensim
Doc2Vec and sign-binarised MiniLM, retrieval time per query) and the sense report (``senses.py``).
"""

from __future__ import annotations

from polymodal.recipes.binary_pv.data import ChoiSegments

__all__ = ["ChoiSegments"]

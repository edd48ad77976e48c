"""Let's Predict Sentence by Sentence (Hwang et al. 2025): language models over sentence embeddings.

Part (a), the semantic autoencoder, is a pure composition of the core: ``polymodal.PrefixLM`` with a frozen
sentence encoder's pooled vector as its one prefix token, trained by ``polymodal.PrefixLMSystem`` to generate the
sentence back (``tiny.yaml``). Parts (b)-(d) of issue 19 are not built yet (see docs/dev-notes/sentence.md).
"""

from __future__ import annotations

"""Unsupervised matching of data and text (see :mod:`.matching`)."""

from __future__ import annotations

from polymodal.recipes.data_text_matching.matching import (
    SCHEMA,
    build_graph,
    match_metrics,
    prepare_febrl,
    read_corpora,
    render_sentence,
    text_tokens,
)

__all__ = ["SCHEMA", "build_graph", "match_metrics", "prepare_febrl", "read_corpora", "render_sentence", "text_tokens"]

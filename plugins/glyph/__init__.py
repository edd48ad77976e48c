"""Glyph modality: frozen embeddings drawn from Unifont glyph bitmaps, for any tokenizer.

Install with ``pip install 'polymodal[glyph]'`` (Unifont comes from ``fonts-unifont``). See
:mod:`polymodal.plugins.glyph.table` for how every kind of codepoint is drawn.
"""

from __future__ import annotations

from polymodal.plugins_manager import require_extra

#: What this plugin imports beyond the core (its ``glyph`` extra), checked before anything else.
polymodal_extra = "glyph"
polymodal_requires = ("PIL", "tokenizers", "transformers")
require_extra("glyph", polymodal_requires, polymodal_extra)

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.glyph.embedding import GlyphEmbedding, replace_input_embeddings
from polymodal.plugins.glyph.encoder import GlyphEncoder, GlyphProcessor
from polymodal.plugins.glyph.lm import GlyphCausalLM
from polymodal.plugins.glyph.table import GlyphRasterizer, build_glyph_table, treatment
from polymodal.plugins.glyph.tokenizers import CodepointTokenizer, HFGlyphTokenizer, as_glyph_tokenizer

__all__ = [
    "CodepointTokenizer",
    "GlyphCausalLM",
    "GlyphEmbedding",
    "GlyphEncoder",
    "GlyphProcessor",
    "GlyphRasterizer",
    "HFGlyphTokenizer",
    "as_glyph_tokenizer",
    "build_glyph_table",
    "replace_input_embeddings",
    "treatment",
]

polymodal_api_version = 1


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="glyph",
            description="frozen Unifont glyph-bitmap embeddings for any tokenizer (codepoints, BPE, bytes)",
            encoders=(GlyphEncoder,),
        )
    )

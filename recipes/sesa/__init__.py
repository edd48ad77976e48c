"""SESA: supervised explicit semantic analysis on Flickr8k captions (see :mod:`.model`)."""

from __future__ import annotations

from polymodal.recipes.sesa.model import (
    ConceptPrecision,
    ConceptSupervision,
    ExplainMatches,
    SESAEncoder,
    concept_words,
    derive_concepts,
    explain,
    read_concepts,
)

__all__ = [
    "ConceptPrecision",
    "ConceptSupervision",
    "ExplainMatches",
    "SESAEncoder",
    "concept_words",
    "derive_concepts",
    "explain",
    "read_concepts",
]

"""Frozen-glyph language model recipe (Bochkov 2025): data module and the comparison script."""

"""2D Matryoshka sentence embeddings (2DMSE) on MiniLM; see README in docs/results.md."""

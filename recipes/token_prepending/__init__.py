"""Training-free sentence embeddings from SmolLM2-135M: last token vs prompt vs prompt + Token Prepending."""

"""Pixel-Linguist recipe (Xiao et al., 2024): perturbation pairs, NLI triplets, stage chaining."""

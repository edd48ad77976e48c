"""Multi-layer trainable pooling vs mean pooling on the same backbone and data."""

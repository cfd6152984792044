"""Wan 2.1 components in Flax NNX: DiT, causal video VAE, umT5 text encoder, CLIP vision tower."""

"""gvc-jax: GVC, the zero-shot generative video codec, in JAX/Flax."""
__version__ = "0.1.0"

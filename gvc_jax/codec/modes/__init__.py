"""Coding modes, one small module each; :mod:`gvc_jax.codec.registry` lists them."""

"""Codings: how one GOP's target becomes payload bits and back; :mod:`gvc_jax.codec.registry`
lists them (docs/codec.md, "Codings")."""

"""Settled studies behind the docs; not part of the product (research/README.md)."""

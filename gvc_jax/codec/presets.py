"""Codec presets, read from ``configs/codec.py``."""
from configs.codec import PRESETS, get_config  # noqa: F401

"""Fixtures of the Wan model tests (the checkpoint folders are in tests/conftest.py)."""
import pytest


@pytest.fixture(scope="session")
def wan22_model_module():
    """``wan.modules.model`` with ``flash_attention`` replaced by the CPU SDPA stand-in."""
    from gvc_jax.testing.refs import sdpa_flash_attention
    from gvc_jax.testing.wan22 import load_wan22

    mod = load_wan22("model")
    saved = mod.flash_attention
    mod.flash_attention = sdpa_flash_attention
    yield mod
    mod.flash_attention = saved

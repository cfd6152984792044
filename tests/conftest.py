"""Session fixtures shared by every test folder: tiny random Wan 2.1 checkpoint folders
(:mod:`gvc_jax.testing.random_wan_tiny`) of every kind, in both layouts.

A test that needs a package of the optional PyTorch stack (torch, diffusers, transformers,
wan22, ...) which is not installed is skipped with the one-line message of
:class:`gvc_jax.testing.deps.MissingDependency`, whether the fixture or the test hits it.
"""
from __future__ import annotations

import pytest

from gvc_jax.testing.deps import MissingDependency

OTHER_SEED = 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:
        return (yield)
    except MissingDependency as e:
        pytest.skip(str(e))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except MissingDependency as e:
        pytest.skip(str(e))


def _official(factory, name: str, kind: str = "t2v", seed: int = 0) -> str:
    from gvc_jax.testing.random_wan_tiny import write_official_folder

    return write_official_folder(factory.mktemp(name), kind=kind, seed=seed)


def _diffusers(factory, name: str, kind: str = "t2v", seed: int = 0) -> str:
    from gvc_jax.testing.random_wan_tiny import write_diffusers_folder

    return write_diffusers_folder(factory.mktemp(name), kind=kind, seed=seed)


# ------------------------------------------------------------------ T2V
@pytest.fixture(scope="session")
def wan_official_folder(tmp_path_factory) -> str:
    return _official(tmp_path_factory, "wan_official")


@pytest.fixture(scope="session")
def wan_diffusers_folder(tmp_path_factory) -> str:
    return _diffusers(tmp_path_factory, "wan_diffusers")


@pytest.fixture(scope="session")
def wan_official_folder_other(tmp_path_factory) -> str:
    return _official(tmp_path_factory, "wan_official_other", seed=OTHER_SEED)


@pytest.fixture(scope="session")
def wan_diffusers_folder_other(tmp_path_factory) -> str:
    return _diffusers(tmp_path_factory, "wan_diffusers_other", seed=OTHER_SEED)


# ------------------------------------------------------------------ I2V and FLF2V
@pytest.fixture(scope="session")
def wan_i2v_official(tmp_path_factory) -> str:
    return _official(tmp_path_factory, "wan_i2v_official", "i2v")


@pytest.fixture(scope="session")
def wan_i2v_diffusers(tmp_path_factory) -> str:
    return _diffusers(tmp_path_factory, "wan_i2v_diffusers", "i2v")


@pytest.fixture(scope="session")
def wan_flf2v_official(tmp_path_factory) -> str:
    return _official(tmp_path_factory, "wan_flf2v_official", "flf2v")


@pytest.fixture(scope="session")
def wan_flf2v_diffusers(tmp_path_factory) -> str:
    return _diffusers(tmp_path_factory, "wan_flf2v_diffusers", "flf2v")

"""Every test starts from a fixed seed, an empty param store and Pyro validation on."""
from __future__ import annotations

import os
from pathlib import Path

import pyro
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# tiny models: one thread is as fast, and deterministic; subprocess tests do not oversubscribe
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_pyro():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    pyro.enable_validation(True)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark data; tests that need it skip cleanly when it is absent."""
    env = os.environ.get("PROBGEN_DATA_DIR")
    path = Path(env) if env else SHARED
    if not path.is_dir():
        pytest.skip(f"shared data not found (set PROBGEN_DATA_DIR; looked in {path})")
    return path


@pytest.fixture(scope="session")
def digits():
    from probgen.data import load

    return load("digits", binarize=True, seed=0)


@pytest.fixture(scope="session")
def digits_grey():
    from probgen.data import load

    return load("digits", seed=0)

"""Recipes that need data for a checkpoint take it from the checkpoint unless it is given."""
from __future__ import annotations

import numpy as np
import pytest

from probgen.recipes import DataConfig, RunConfig, TrainConfig, diagnose, train
from probgen.recipes.diagnose import DiagnoseConfig
from probgen.recipes.models import GMMConfig


@pytest.fixture
def small_gmm(tmp_path):
    """A GMM trained on a 4×4 data file (not the default digits)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "tiny.npy", (rng.random((60, 4, 4)) > 0.5).astype(np.float32))
    res = train(TrainConfig("gmm", GMMConfig(n_components=2, max_iter=2),
                            DataConfig(data=str(tmp_path / "tiny.npy")), RunConfig(out=str(tmp_path), quiet=True)))
    return res.path


def test_diagnose_reads_the_data_from_the_checkpoint(small_gmm, tmp_path):
    res = diagnose(DiagnoseConfig(checkpoint=str(small_gmm), points=5, run=RunConfig(out=str(tmp_path / "d"),
                                                                                      quiet=True)))
    assert res.summary["points"] == 5 and "tiny" in res.summary["data"]


def test_given_data_wins(small_gmm, tmp_path):
    with pytest.raises(ValueError):  # digits are 8×8: they do not fit a 4×4 model
        diagnose(DiagnoseConfig(checkpoint=str(small_gmm), points=5, data=DataConfig(),
                                run=RunConfig(out=str(tmp_path / "d"), quiet=True)))

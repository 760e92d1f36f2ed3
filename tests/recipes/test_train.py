"""The ``train`` / ``sample`` recipes and the registry they read; options anywhere on the CLI."""
from __future__ import annotations

import dataclasses

import pytest

from probgen.recipes.config import RunConfig
from probgen.recipes.models import MODELS, TOUR, VAEConfig, GMMConfig, model_spec
from probgen.recipes.train import SampleConfig, TrainConfig, sample, train


def test_registry_defaults_are_written_once():
    model_spec("gmm")
    assert {"gmm", "vae", "cvae", "autoencoder", "mixture-vae", "pixelcnn", "pixelrnn", "gan",
            "sentence-vae"} <= set(MODELS)
    assert VAEConfig().epochs == 300 and (GMMConfig().batch_size, GMMConfig().lr) == (256, 0.05)
    for spec in MODELS.values():
        assert dataclasses.is_dataclass(spec.config) and callable(spec.build) and callable(spec.trainer)
        assert spec.tour is None or spec.tour in TOUR


def test_train_then_sample(tmp_path):
    res = train(TrainConfig("vae", VAEConfig(epochs=1, z_dim=2, hidden="8"),
                            run=RunConfig(out=str(tmp_path), quiet=True)))
    assert res.path == tmp_path / "vae.pt" and res.path.is_file() and res.seconds > 0
    assert res.dataset.name == "digits" and "trained vae" in res.line("vae")
    out = sample(SampleConfig(checkpoint=str(res.path), n=5, out=str(tmp_path / "s.png")))
    assert out.samples.shape == (5, 8, 8) and out.path.is_file()


def test_checkpoint_records_its_data(tmp_path):
    from probgen.io import load_checkpoint

    res = train(TrainConfig("vae", VAEConfig(epochs=2, z_dim=2, hidden="8"),  # the trainer's best checkpoint
                            run=RunConfig(out=str(tmp_path), quiet=True)))
    data = load_checkpoint(res.path)["data"]
    assert data["name"] == "digits" and data["binarize"] is True and sum(data["splits"]) > 0


def test_bad_config_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="z_dim"):
        train(TrainConfig("vae", VAEConfig(z_dim=0), run=RunConfig(out=str(tmp_path), quiet=True)))
    with pytest.raises(ValueError, match="unknown model"):
        train(TrainConfig("nope", run=RunConfig(out=str(tmp_path))))

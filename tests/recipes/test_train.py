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


# -- issue 30: resume without its file, a checkpoint no run wrote, bounded threads ---------------------
TINY = ["--epochs", "1", "--z-dim", "2", "--hidden", "8", "--quiet"]


def test_resume_without_a_resume_file_is_one_line_and_replaces_nothing(tmp_path):
    from probgen.runs import manifest_path
    from tests.test_reliability_hostile import one_line, run_cli

    base = ["train", "--out", tmp_path, "vae", *TINY]
    assert run_cli(base)[0] == 0
    (tmp_path / "vae.last.pt").unlink()
    before = (tmp_path / "vae.pt").read_bytes()
    one_line(*run_cli(base + ["--resume"])[:2], "--resume", "vae.last.pt does not exist", "--force")
    assert (tmp_path / "vae.pt").read_bytes() == before and manifest_path(tmp_path, "vae").is_file()
    # EM writes no resume file: nothing to continue in a fresh folder either
    one_line(*run_cli(["train", "--out", tmp_path / "new", "gmm", "--resume", "--quiet"])[:2],
             "gmm.last.pt does not exist")
    assert not (tmp_path / "new" / "gmm.pt").exists()


def test_a_checkpoint_no_run_wrote_is_replaced_only_with_force(tmp_path):
    from probgen.models import VAE
    from probgen.runs import manifest_path
    from tests.test_reliability_hostile import one_line, run_cli

    VAE(64, z_dim=2, hidden=(8,), x_shape=(8, 8)).save(tmp_path / "vae.pt")  # copied in: no manifest
    before = (tmp_path / "vae.pt").read_bytes()
    base = ["train", "--out", tmp_path, "vae", *TINY]
    one_line(*run_cli(base)[:2], "vae.pt: exists, and no probgen train vae run", "--force")
    assert (tmp_path / "vae.pt").read_bytes() == before and not manifest_path(tmp_path, "vae").exists()
    assert run_cli(base + ["--force"])[0] == 0 and manifest_path(tmp_path, "vae").is_file()


def test_threads_are_bounded_from_the_api_and_the_command_line(tmp_path):
    from tests.test_reliability_hostile import one_line, run_cli

    with pytest.raises(ValueError, match=r"--threads must be <= 1024 \(torch threads\), got 2147483648"):
        train(TrainConfig("vae", VAEConfig(threads=2**31), run=RunConfig(out=str(tmp_path), quiet=True)))
    one_line(*run_cli(["train", "vae", "--threads", 2**31, "--out", tmp_path])[:2],
             "--threads must be <= 1024 (torch threads), got 2147483648")
    # an int flag without a range of its own still fits in 64 bits: never an overflow inside torch
    one_line(*run_cli(["train", "vae", "--seed", 10**30, "--out", tmp_path])[:2], "argument --seed", "64-bit")
    assert not (tmp_path / "vae.pt").exists()

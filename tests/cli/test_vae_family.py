"""Every VAE-family command, smoke-run with tiny models through ``probgen.cli.main``.

Image grids are pixel-exact: a grid of R × C images of 8×8 pixels with 1-pixel gaps is
(C · 9 + 1) × (R · 9 + 1) pixels, upscaled 4× (to ~32 px per image).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from probgen.cli import main


def _grid_size(rows: int, cols: int, side: int = 8, scale: int = 7) -> tuple[int, int]:
    """Grid PNG size: 8×8 digits are upscaled ×7, so that one digit is 56 px (readable at 100 %)."""
    return ((cols * (side + 1) + 1) * scale, (rows * (side + 1) + 1) * scale)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("vae_family")
    tiny = ["--epochs", "1", "--hidden", "32", "--quiet", "--batch-size", "256"]
    assert main(["train", "--out", str(d), "vae", "--z-dim", "2", *tiny]) == 0
    assert main(["train", "--out", str(d), "cvae", "--z-dim", "2", *tiny]) == 0
    assert main(["train", "--out", str(d), "autoencoder", "--z-dim", "3", *tiny]) == 0
    return d


def test_trainers_write_checkpoints(ckpts):
    from probgen.models import load

    cvae, ae = load(ckpts / "cvae.pt"), load(ckpts / "autoencoder.pt")
    assert cvae.kind == "cvae" and cvae.n_classes == 10
    assert ae.kind == "autoencoder" and float(ae.code_mean.abs().sum()) > 0  # fitted codes were saved


def test_sample_with_label(ckpts, tmp_path):
    out, npy = tmp_path / "s.png", tmp_path / "s.npy"
    assert main(["sample", str(ckpts / "cvae.pt"), "--label", "3", "-n", "16", "--out", str(out),
                 "--npy", str(npy)]) == 0
    assert Image.open(out).size == _grid_size(4, 4) and np.load(npy).shape == (16, 8, 8)


@pytest.mark.parametrize("model", ["vae", "cvae", "autoencoder"])
def test_traverse(ckpts, tmp_path, model):
    out, npy = tmp_path / "t.png", tmp_path / "t.npy"
    assert main(["traverse", str(ckpts / f"{model}.pt"), "--dims", "0", "1", "--steps", "5",
                 "--base", "image:3", "--out", str(out), "--npy", str(npy)]) == 0
    assert Image.open(out).size == _grid_size(5, 5)
    assert np.load(npy).shape == (5, 5, 8, 8)


def test_latent_map(ckpts, tmp_path):
    out = tmp_path / "m.png"
    assert main(["latent-map", str(ckpts / "vae.pt"), "--steps", "6", "--out", str(out)]) == 0
    assert Image.open(out).size == _grid_size(6, 6)
    assert (tmp_path / "m_scatter.png").stat().st_size > 1000
    assert main(["latent-map", str(ckpts / "cvae.pt"), "--steps", "4", "--label", "7", "--out", str(out),
                 "--force"]) == 0


@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_interpolate(ckpts, tmp_path, model):
    out, npy = tmp_path / "i.png", tmp_path / "i.npy"
    assert main(["interpolate", str(ckpts / f"{model}.pt"), "--from", "0", "--to", "5", "--steps", "4",
                 "--slerp", "--out", str(out), "--npy", str(npy)]) == 0
    assert Image.open(out).size == _grid_size(2, 6)  # linear + spherical, original + 4 steps + original
    assert np.load(npy).shape == (2, 6, 8, 8)


def test_style_transfer(ckpts, tmp_path):
    out = tmp_path / "st.png"
    assert main(["style-transfer", str(ckpts / "cvae.pt"), "--index", "0", "4", "--out", str(out)]) == 0
    assert Image.open(out).size == _grid_size(2, 11)


def test_why_vae(tmp_path):
    out = tmp_path / "why"
    assert main(["why-vae", "--out", str(out), "--epochs", "1", "--hidden", "32", "--z-dim", "3",
                 "--n-eval", "64", "-n", "16", "--quiet", "--npy",
                 "--classifier-epochs", "3", "--seed", "1"]) == 0  # seed 1: a cache entry of its own
    res = json.loads((out / "why_vae.json").read_text())
    assert {r["name"] for r in res["rows"]} >= {"VAE, z ~ N(0, I)", "AE, z ~ N(0, I)"}
    assert 0 < res["classifier_test_accuracy"] <= 1 and isinstance(res["vae_wins"], bool)
    assert Image.open(out / "why_vae.png").format == "PNG"
    assert np.load(out / "why_vae_samples.npz")["vae"].shape == (64, 8, 8)


def test_compare_with_labels_and_ae(tmp_path):
    assert main(["compare", "--models", "cvae,autoencoder", "--epochs", "1", "--num-samples", "4",
                 "--no-diagnostics", "--quiet", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in res["models"]] == ["cvae", "autoencoder"]


@pytest.mark.parametrize("argv, message", [
    (["latent-map", "{d}/autoencoder.pt"], "2-D code"),
    (["style-transfer", "{d}/vae.pt"], "cvae"),
    (["traverse", "{d}/vae.pt", "--label", "2"], "not conditional"),
    (["traverse", "{d}/vae.pt", "--dims", "0", "0"], "two different dims"),
    (["interpolate", "{d}/vae.pt", "--from", "100000"], "test split has"),
    (["traverse", "{d}/vae.pt", "--base", "middle"], "--base"),
])
def test_user_errors_exit_2(ckpts, tmp_path, capsys, argv, message):
    argv = [a.format(d=ckpts) for a in argv] + ["--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err

"""`probgen train pixelcnn|pixelrnn`, `sample`, `complete` and `compare`, smoke-run with tiny nets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from probgen.cli import main
from probgen.recipes.models import checkpoint_extra

TINY = ["--epochs", "1", "--channels", "8", "--n-layers", "2", "--quiet", "--batch-size", "256"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("pixel")
    torch.set_num_threads(1)
    assert main(["train", "--out", str(d), "pixelcnn", "--conditional", *TINY]) == 0
    assert main(["train", "--out", str(d), "pixelrnn", "--no-binarize", *TINY]) == 0
    return d


def test_trainers_write_checkpoints(ckpts):
    from probgen.models import PixelModel, load

    cnn, rnn = load(ckpts / "pixelcnn.pt"), load(ckpts / "pixelrnn.pt")
    assert isinstance(cnn, PixelModel) and cnn.backbone == "gated" and cnn.needs_labels and cnn.n_classes == 10
    assert rnn.backbone == "rowlstm" and rnn.likelihood == "categorical" and rnn.levels == 17
    assert checkpoint_extra(ckpts / "pixelcnn.pt")["data"] == "digits"


def test_sample_with_label(ckpts, tmp_path):
    out, npy = tmp_path / "s.png", tmp_path / "s.npy"
    assert main(["sample", str(ckpts / "pixelcnn.pt"), "--label", "3", "-n", "4", "--out", str(out),
                 "--npy", str(npy), "--temperature", "0.8"]) == 0
    x = np.load(npy)
    assert x.shape == (4, 8, 8) and set(np.unique(x)) <= {0.0, 1.0}
    assert Image.open(out).size[0] > 0


def test_sample_rejects_unknown_flags(ckpts, tmp_path, capsys):
    assert main(["sample", str(ckpts / "pixelrnn.pt"), "--label", "3", "--out", str(tmp_path / "s.png")]) == 2
    assert "not class-conditional" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["pixelcnn", "pixelrnn"])
def test_complete(ckpts, tmp_path, model):
    out, npy = tmp_path / "c.png", tmp_path / "c.npy"
    assert main(["complete", str(ckpts / f"{model}.pt"), "--index", "2", "5", "--rows", "3", "-n", "3",
                 "--out", str(out), "--npy", str(npy), "--quiet"]) == 0
    got = np.load(npy)
    assert got.shape == (2, 3, 8, 8)
    from probgen.data import load

    ds = load("digits", binarize=model == "pixelcnn")
    kept = ds.test[[2, 5], :3].numpy()
    if model == "pixelrnn":  # the model stores grey levels on its 17-level grid
        kept = np.floor(kept * 17).clip(0, 16) / 16
    assert np.allclose(got[:, :, :3], kept[:, None], atol=1e-6)
    assert Image.open(out).size[0] > Image.open(out).size[1]  # one row per image: 2 + n panels


def test_complete_errors(ckpts, tmp_path, capsys):
    assert main(["complete", str(ckpts / "pixelcnn.pt"), "--index", "999", "--out", str(tmp_path / "c.png")]) == 2
    assert "--index 999" in capsys.readouterr().err
    assert main(["complete", str(ckpts / "pixelcnn.pt"), "--rows", "9", "--out", str(tmp_path / "c.png")]) == 2


def test_compare_puts_exact_log_lik_in_the_table(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--models", "pixelcnn,pixelrnn", "--epochs", "1", "--out", str(out),
                 "--no-diagnostics", "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in res["models"]}
    assert rows["pixelcnn"]["estimator"] == "exact" and rows["pixelcnn"]["num_samples"] is None
    assert -64 * np.log(2) - 1 < rows["pixelrnn"]["test_log_likelihood"] < 0

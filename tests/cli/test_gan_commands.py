"""GAN commands end to end with tiny settings: gan-toy, train gan, sample, walk, gan-eval, compare.

(Named test_gan_commands.py, not test_gan.py: without __init__.py files pytest cannot collect two
test modules with the same basename, and tests/models/test_gan.py exists.)
"""
from __future__ import annotations

import json

import pytest
import torch

from probgen.cli import main


def test_gan_toy_writes_figure_json_and_gif(tmp_path):
    out = tmp_path / "toy"
    assert main(["gan-toy", "--steps", "20", "--snapshots", "3", "--eval-every", "5", "--out", str(out),
                 "--quiet", "--hidden", "16"]) == 0
    for name in ("toy.png", "toy.json", "toy_wasserstein.png", "toy.gif", "toy_gan.pt"):
        assert (out / name).is_file(), name
    res = json.loads((out / "toy.json").read_text())
    assert res["target"] == "mixture" and res["snapshot_steps"] == [0, 10, 20]
    assert [r["step"] for r in res["per_step"]] == [5, 10, 15, 20]
    assert res["final_wasserstein"] > 0 and len(res["mode_mass"]) == 2
    from PIL import Image

    assert Image.open(out / "toy.gif").n_frames == 3


def test_gan_toy_rejects_bad_steps(tmp_path, capsys):
    assert main(["gan-toy", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan_train")
    torch.set_num_threads(3)
    code = main(["train", "--out", str(out), "gan", "--epochs", "2", "--hidden", "16,32", "--z-dim", "4",
                 "--batch-size", "128", "--quiet", "--threads", "1"])
    assert code == 0 and torch.get_num_threads() == 1  # --threads, as every trainer has it
    return out


def test_train_gan_rejects_bad_threads(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "gan", "--threads", "0", "--epochs", "1"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "gan.pt").exists()


def test_train_writes_checkpoint_grids_history(trained):
    assert (trained / "gan.pt").is_file() and (trained / "gan.last.pt").is_file()
    assert sorted(p.name for p in (trained / "gan_grids").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    hist = json.loads((trained / "gan_history.json").read_text())
    assert len(hist["history"]) == 2 and "coverage" in hist["history"][0]  # the classifier monitor ran
    assert 0 <= hist["summary"]["max_class_fraction"] <= 1 and hist["summary"]["classifier_test_accuracy"] > 0.9
    assert (trained / "gan_training.png").is_file() and (trained / "gan_samples.png").is_file()


def test_sample_and_walk_from_a_gan(trained, tmp_path):
    assert main(["sample", str(trained / "gan.pt"), "-n", "9", "--out", str(tmp_path / "s.png"),
                 "--npy", str(tmp_path / "s.npy")]) == 0
    import numpy as np

    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (9, 8, 8) and arr.min() >= 0 and arr.max() <= 1
    assert main(["walk", str(trained / "gan.pt"), "--n", "3", "--steps", "4", "--out", str(tmp_path / "w.png")]) == 0
    for name in ("w.png", "w_linear.png", "w_spherical.png", "w.json"):
        assert (tmp_path / name).is_file(), name
    info = json.loads((tmp_path / "w.json").read_text())
    assert info["norm_middle_spherical_mean"] > info["norm_middle_linear_mean"]


def test_walk_a_vae_and_refuse_a_gmm(tmp_path, capsys):
    from probgen.models import GMM, VAE

    VAE(64, z_dim=3, hidden=[8], x_shape=[8, 8]).save(tmp_path / "vae.pt")
    assert main(["walk", str(tmp_path / "vae.pt"), "--n", "2", "--steps", "3", "--out", str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v_spherical.png").is_file()
    GMM(2, x_dim=64, x_shape=[8, 8]).save(tmp_path / "gmm.pt")
    assert main(["walk", str(tmp_path / "gmm.pt"), "--out", str(tmp_path / "g.png")]) == 2
    assert "no code space" in capsys.readouterr().err


def test_gan_eval_judges_gan_and_vae(trained, tmp_path, capsys):
    from probgen.models import VAE

    VAE(64, z_dim=3, hidden=[8], x_shape=[8, 8]).save(tmp_path / "vae.pt")
    assert main(["gan-eval", str(trained / "gan.pt"), str(tmp_path / "vae.pt"), "-n", "50", "--mean",
                 "--out", str(tmp_path / "ev")]) == 0
    text = capsys.readouterr().out
    assert "NOT Inception FID" in text and "test accuracy" in text
    res = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert set(res["models"]) == {"gan", "vae"} and res["models"]["vae"]["mean_images"] is True
    assert all(r["frechet_classifier_features"] >= 0 for r in res["models"].values())
    assert (tmp_path / "ev" / "class_histograms.png").is_file()


def test_compare_scores_a_gan_with_parzen(trained, tmp_path, capsys):
    import shutil

    src = tmp_path / "from"
    src.mkdir()
    shutil.copy(trained / "gan.pt", src / "gan.pt")
    assert main(["compare", "--models", "gan", "--from", str(src), "--out", str(tmp_path / "cmp"),
                 "--no-binarize", "--no-diagnostics", "--quiet"]) == 0
    res = json.loads((tmp_path / "cmp" / "results.json").read_text())
    (row,) = res["models"]
    assert row["estimator"] == "Parzen" and row["num_samples"] >= 10000
    assert "weak estimator" in capsys.readouterr().out

"""TensorBoard logs through the one logging hook, for every trainer (issue 20)."""
from __future__ import annotations

import builtins

import pytest
import torch

from probgen.cli import main
from probgen.infer import fit_adversarial, fit_svi
from probgen.models import GAN, GMM, VAE


def _scalars(log_dir) -> dict[str, list[float]]:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(log_dir.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {log_dir}"
    acc = EventAccumulator(str(files[-1].parent))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _data(n=48):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 6, generator=g) > 0.5).float()


def test_svi_writes_scalars_per_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    x = _data()
    fit_svi(VAE(6, z_dim=2, hidden=(4,)), x, val=x[:8], epochs=3, batch_size=16, progress=False,
            log_dir=tmp_path / "tb")
    s = _scalars(tmp_path / "tb")
    assert len(s["svi/train_loss"]) == 3 and len(s["svi/val_loss"]) == 3
    assert s["svi/final/steps"] == [9.0]


def test_em_and_adversarial_write_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    g = GMM(3, likelihood="bernoulli").fit(_data(), max_iter=4, tol=0, progress=False, log_dir=tmp_path / "em")
    assert len(_scalars(tmp_path / "em")["em/log_likelihood"]) == len(g.em_history)
    torch.manual_seed(0)
    gan = GAN("mlp", x_shape=[1], z_dim=2, hidden=[8], output="linear", n_fixed=1)
    fit_adversarial(gan, lambda n: torch.randn(n, 1), steps=3, batch_size=16, progress=False,
                    log_dir=tmp_path / "gan")
    tags = _scalars(tmp_path / "gan")
    assert any(t.startswith("adversarial/") and t.endswith("d_loss") for t in tags), tags


def test_cli_log_dir(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    assert main(["train", "--out", str(tmp_path / "run"), "vae", "--epochs", "2", "--hidden", "8", "--z-dim", "2",
                 "--log-dir", str(tmp_path / "tb"), "--quiet"]) == 0
    assert len(_scalars(tmp_path / "tb")["svi/train_loss"]) == 2
    assert main(["train", "--out", str(tmp_path / "gmm"), "gmm", "--n-components", "3", "--max-iter", "3",
                 "--log-dir", str(tmp_path / "tbg"), "--quiet"]) == 0
    assert _scalars(tmp_path / "tbg")["em/log_likelihood"]


def test_missing_tensorboard_is_one_line(monkeypatch, tmp_path, capsys):
    real_import = builtins.__import__

    def no_tb(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.startswith(("torch.utils.tensorboard", "tensorboard")):
            raise ImportError(name)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(ValueError, match="pip install"):
        fit_svi(VAE(6, z_dim=2, hidden=(4,)), _data(), epochs=1, progress=False, log_dir=tmp_path / "tb")
    code = main(["train", "--out", str(tmp_path / "run"), "vae", "--epochs", "1", "--hidden", "8",
                 "--log-dir", str(tmp_path / "tb"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tensorboard" in err[0], err

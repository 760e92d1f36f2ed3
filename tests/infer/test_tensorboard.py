"""TensorBoard logs through the one logging hook, for every trainer (issue 20)."""
from __future__ import annotations

import builtins

import pytest
import torch

from probgen.cli import main
from probgen.infer import fit_adversarial, fit_svi
from probgen.models import GAN, GMM, VAE


def _events(log_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(log_dir.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {log_dir}"
    acc = EventAccumulator(str(files[-1].parent), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _scalars(log_dir) -> dict[str, list[float]]:
    acc = _events(log_dir)
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _steps(log_dir, tag) -> list[int]:
    return [e.step for e in _events(log_dir).Scalars(tag)]


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


def test_per_step_losses_and_a_sample_grid_per_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    vae = VAE(16, z_dim=2, hidden=(4,), x_shape=[4, 4])
    fit_svi(vae, _data16(), val=_data16()[:8], epochs=2, batch_size=16, progress=False, log_dir=tmp_path / "tb")
    assert _steps(tmp_path / "tb", "svi/step/loss") == [1, 2, 3, 4, 5, 6]
    acc = _events(tmp_path / "tb")
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [1, 2] and grids[0].height > 4 and grids[0].width > 4


def _data16(n=48):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, 16, generator=g) > 0.5).float()


def test_logging_draws_no_training_random_numbers(tmp_path):
    """The sample grid is drawn under a fixed seed with every RNG restored: the same weights."""
    pytest.importorskip("tensorboard")
    states = []
    for log_dir in (None, tmp_path / "tb"):
        torch.manual_seed(0)
        vae = VAE(16, z_dim=2, hidden=(4,), x_shape=[4, 4])
        fit_svi(vae, _data16(), epochs=2, batch_size=16, progress=False, log_dir=log_dir)
        states.append(vae.state_dict())
        after = torch.rand(3)
        states.append({"after": after})
    assert all(torch.equal(states[0][k], states[2][k]) for k in states[0])
    assert torch.equal(states[1]["after"], states[3]["after"])


def test_gan_steps_and_streamed_steps_have_their_own_x_axis(tmp_path):
    pytest.importorskip("tensorboard")
    torch.manual_seed(0)
    gan = GAN("mlp", x_shape=[4, 4], z_dim=2, hidden=[8], n_fixed=4)
    fit_adversarial(gan, _data16().reshape(-1, 4, 4), epochs=2, batch_size=16, progress=False,
                    log_dir=tmp_path / "img")
    s = _scalars(tmp_path / "img")
    assert len(s["adversarial/step/d_loss"]) == 6 and len(s["adversarial/step/g_loss"]) == 6
    assert len(s["adversarial/d_loss"]) == 2
    assert [g.step for g in _events(tmp_path / "img").Images("samples")] == [1, 2]
    toy = GAN("mlp", x_shape=[1], z_dim=2, hidden=[8], output="linear", n_fixed=1)
    fit_adversarial(toy, lambda n: torch.randn(n, 1), steps=3, batch_size=16, progress=False,
                    log_dir=tmp_path / "toy")
    assert _steps(tmp_path / "toy", "adversarial/d_loss") == [1, 2, 3]


def test_cli_gan_and_compare_log_dir(tmp_path):
    """``train gan --log-dir`` reaches the trainer; ``compare --log-dir`` adds the test score."""
    pytest.importorskip("tensorboard")
    assert main(["train", "--out", str(tmp_path / "g"), "gan", "--epochs", "1", "--hidden", "8", "--z-dim", "2",
                 "--no-monitor", "--log-dir", str(tmp_path / "tbgan"), "--quiet"]) == 0
    assert _scalars(tmp_path / "tbgan")["adversarial/step/d_loss"]
    assert main(["compare", "--models", "vae", "--epochs", "1", "--num-samples", "3", "--no-diagnostics",
                 "--out", str(tmp_path / "c"), "--log-dir", str(tmp_path / "tbc"), "--quiet"]) == 0
    import json

    row = json.loads((tmp_path / "c" / "results.json").read_text())["models"][0]
    s = _scalars(tmp_path / "tbc" / "vae")
    assert s["test/log_likelihood"] == [pytest.approx(row["test_log_likelihood"], abs=1e-4)]
    assert s["test/num_samples"] == [3.0] and s["svi/train_loss"]

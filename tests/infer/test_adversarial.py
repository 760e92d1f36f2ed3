"""The adversarial trainer: which network each step moves, k D steps per G step, fit_adversarial
on a data tensor (resume, bit for bit) and on a sampler (the 1-D toy). The objectives: test_gan_losses.py."""
from __future__ import annotations

import pytest
import torch

from probgen.infer import adversarial
from probgen.infer.adversarial import (discriminator_step, fit_adversarial, generator_step, make_optimizers,
                                       train_step, update_ema)
from probgen.models import GAN


# -- two time scales and the moving average of G ---------------------------------------------------
def test_two_time_scale_learning_rates():
    gan = GAN("mlp", x_shape=[2], z_dim=2, hidden=[8], output="linear")
    opt_d, opt_g = make_optimizers(gan, 1e-4, lr_d=4e-4)
    assert opt_d.param_groups[0]["lr"] == 4e-4 and opt_g.param_groups[0]["lr"] == 1e-4
    opt_d, opt_g = make_optimizers(gan, 3e-4)
    assert opt_d.param_groups[0]["lr"] == opt_g.param_groups[0]["lr"] == 3e-4
    with pytest.raises(ValueError, match="lr_d must be > 0"):
        make_optimizers(gan, 1e-4, lr_d=0.0)


def test_ema_of_the_generator_is_a_moving_average_used_for_sampling():
    torch.manual_seed(0)
    gan = GAN("mlp", x_shape=[2], z_dim=2, hidden=[8], output="linear", ema=0.75)
    assert GAN("mlp", x_shape=[2], z_dim=2, hidden=[8]).generator_ema is None  # off by default
    with pytest.raises(ValueError, match="ema must be in"):
        GAN(ema=1.0)
    shadow0 = [p.clone() for p in gan.generator_ema.parameters()]
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    update_ema(gan)  # shadow <- 0.75 shadow + 0.25 G
    for s, s0, p in zip(gan.generator_ema.parameters(), shadow0, gan.generator.parameters()):
        assert torch.allclose(s, 0.75 * s0 + 0.25 * p)
        assert not s.requires_grad
    z = torch.randn(3, 2)
    assert torch.allclose(gan.decode(z), gan.generator_ema(z)) and not torch.allclose(gan.decode(z), gan.generator(z))
    # a G step updates the average; the optimizer never touches it directly
    opt_d, opt_g = make_optimizers(gan, 1e-2)
    before = [p.clone() for p in gan.generator_ema.parameters()]
    generator_step(gan, 8, opt_g)
    assert all(not torch.equal(a, b) for a, b in zip(before, gan.generator_ema.parameters()))
    assert all(id(p) not in {id(q) for q in gan.generator_ema.parameters()} for g in opt_g.param_groups
               for p in g["params"])


# -- one step moves one network ------------------------------------------------------------------
def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(module, before):
    return [not torch.equal(p, b) for p, b in zip(module.parameters(), before)]


@pytest.mark.parametrize("arch,loss", [("mlp", "non-saturating"), ("mlp", "wgan-gp"), ("dcgan", "minimax")])
def test_d_step_moves_only_d_and_g_step_moves_only_g(arch, loss):
    torch.manual_seed(0)
    gan = GAN(arch, x_shape=[8, 8], z_dim=4, hidden=[8, 16], loss=loss)
    opt_d, opt_g = make_optimizers(gan, 1e-2)
    real = torch.rand(16, 8, 8)
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    discriminator_step(gan, real, opt_d, smoothing=0.1, noise=0.1)
    assert not any(_changed(gan.generator, g0))
    assert any(_changed(gan.discriminator, d0))  # (a WGAN critic's output bias has no gradient)
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    generator_step(gan, 16, opt_g, noise=0.1)
    assert not any(_changed(gan.discriminator, d0))
    assert any(_changed(gan.generator, g0))
    assert all(p.grad is None for p in gan.discriminator.parameters())  # no stale gradients for D


def test_k_discriminator_steps_per_generator_step(monkeypatch):
    gan = GAN("mlp", x_shape=[2], z_dim=2, hidden=[8], output="linear")
    calls = []
    d_step, g_step = adversarial.discriminator_step, adversarial.generator_step
    monkeypatch.setattr(adversarial, "discriminator_step", lambda *a, **k: calls.append("D") or d_step(*a, **k))
    monkeypatch.setattr(adversarial, "generator_step", lambda *a, **k: calls.append("G") or g_step(*a, **k))
    opt_d, opt_g = make_optimizers(gan)
    train_step(gan, [torch.randn(4, 2)] * 3, opt_d, opt_g)
    assert calls == ["D", "D", "D", "G"]


# -- the trainer on a sampler: the 1-D toy's loop ----------------------------------------------
def _toy_sampler(n: int) -> torch.Tensor:
    k = torch.randint(0, 2, (n,))
    return ((k * 4 - 2) + 0.5 * torch.randn(n)).float().unsqueeze(1)  # n × 1: 0.5 N(-2) + 0.5 N(2)


def test_fit_adversarial_on_a_sampler_runs_steps_with_on_step_and_lr_decay():
    torch.manual_seed(0)
    gan = GAN("mlp", x_shape=[1], z_dim=2, hidden=[8], output="linear", n_fixed=1)
    drawn, seen = [], []

    def sample(n):
        drawn.append(n)
        return _toy_sampler(n)

    steps = 6
    res = fit_adversarial(gan, sample, steps=steps, batch_size=32, lr=1e-3, d_steps=2, progress=False,
                          lr_lambda=lambda i: min(1.0, 2.0 * (1 - i / steps)),
                          on_step=lambda step, stats: seen.append((step, sorted(stats))) or {"W1": "0"})
    assert res.steps == steps and [s for s, _ in seen] == list(range(1, steps + 1))
    assert seen[0][1] == ["d_fake", "d_loss", "d_real", "g_loss"]
    assert drawn == [32] * (2 * steps)  # k = 2 fresh real batches per generator step
    assert [r["step"] for r in res.history] == list(range(1, steps + 1))
    assert not gan.training  # left in eval mode, like GAN.fit


def test_fit_adversarial_refuses_mixed_modes():
    gan = GAN("mlp", x_shape=[1], z_dim=2, hidden=[8], output="linear")
    with pytest.raises(ValueError, match="not both"):
        fit_adversarial(gan, _toy_sampler, steps=2, epochs=2)
    with pytest.raises(ValueError, match="steps= goes with a sampler"):
        fit_adversarial(gan, _toy_sampler, epochs=2)
    with pytest.raises(ValueError, match="need epochs="):
        fit_adversarial(gan, _toy_sampler, steps=2, checkpoint="x.pt")


# -- the trainer on a tensor: checkpoints and bit-identical resume -----------------------------------
@pytest.mark.parametrize("options", [{}, {"loss": "hinge", "spectral_norm": True, "ema": 0.9}])
def test_gan_resume_is_bit_identical(tmp_path, options):
    x = _toy_sampler(96)

    def run(folder, epochs, resume=False):
        gan = GAN("mlp", x_shape=[1], z_dim=2, hidden=[8], output="linear", **options)
        gan.fit(x, epochs=epochs, batch_size=32, progress=False, checkpoint=folder / "g.pt", resume=resume,
                lr_d=4e-4 if options else None)
        return gan

    torch.manual_seed(1)
    ref = run(tmp_path / "ref", 4)
    torch.manual_seed(1)
    run(tmp_path / "cut", 2)  # "killed" after two epochs ...
    torch.manual_seed(99)  # ... and restarted in another process state
    again = run(tmp_path / "cut", 4, resume=True)
    assert [r["epoch"] for r in again.train_result.history] == [1, 2, 3, 4]
    for k, v in ref.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]) or (v.isnan().all() and again.state_dict()[k].isnan().all()), k

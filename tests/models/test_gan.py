"""GAN: the objectives on hand-computed cases, which network each step moves, Parzen windows."""
from __future__ import annotations

import math

import pytest
import torch

from probgen.models.gan import (GAN, discriminator_loss, generator_loss, gradient_penalty, lerp,
                                parzen_log_prob, select_parzen_bandwidth, slerp, wasserstein_1d)

LOG3 = math.log(3.0)  # σ(log 3) = 0.75


# -- the objectives ------------------------------------------------------------------------
def test_discriminator_loss_undecided_is_two_log_two():
    zeros = torch.zeros(5)
    for loss in ("minimax", "non-saturating"):
        assert float(discriminator_loss(zeros, zeros, loss)) == pytest.approx(2 * math.log(2))


def test_discriminator_loss_hand_computed_with_one_sided_smoothing():
    real, fake = torch.tensor([LOG3]), torch.tensor([-LOG3])  # D(x) = 0.75, D(G(z)) = 0.25
    plain = -math.log(0.75) - math.log(0.75)
    assert float(discriminator_loss(real, fake, "minimax")) == pytest.approx(plain, rel=1e-6)
    # one-sided: the real target is 0.9, the fake target stays 0
    smoothed = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25)) - math.log(0.75)
    assert float(discriminator_loss(real, fake, "non-saturating", smoothing=0.1)) == pytest.approx(smoothed, rel=1e-6)


def test_generator_losses_hand_computed():
    fake = torch.tensor([LOG3, -LOG3])  # D(G(z)) = 0.75 and 0.25
    # minimax: G minimises E log(1 − D(G(z)))
    assert float(generator_loss(fake, "minimax")) == pytest.approx((math.log(0.25) + math.log(0.75)) / 2, rel=1e-6)
    # non-saturating: G minimises −E log D(G(z))
    assert float(generator_loss(fake, "non-saturating")) == pytest.approx(-(math.log(0.75) + math.log(0.25)) / 2,
                                                                          rel=1e-6)
    assert float(generator_loss(torch.tensor([1.0, 3.0]), "wgan-gp")) == pytest.approx(-2.0)
    assert float(discriminator_loss(torch.tensor([1.0, 3.0]), torch.tensor([-1.0]), "wgan-gp")) == pytest.approx(-3.0)


def test_non_saturating_gradient_is_strong_where_minimax_saturates():
    fake = torch.tensor([-8.0], requires_grad=True)  # D confidently rejects the sample
    (g_mm,) = torch.autograd.grad(generator_loss(fake, "minimax"), fake)
    (g_ns,) = torch.autograd.grad(generator_loss(fake, "non-saturating"), fake)
    assert abs(float(g_mm)) < 1e-3 < 0.9 < abs(float(g_ns))


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([3.0, 4.0])  # ‖∇D‖ = 5 everywhere

    def critic(x):
        return x @ w

    real, fake = torch.randn(7, 2), torch.randn(7, 2)
    assert float(gradient_penalty(critic, real, fake, weight=10.0)) == pytest.approx(10 * (5 - 1) ** 2)
    unit = torch.tensor([0.6, 0.8])
    assert float(gradient_penalty(lambda x: x @ unit, real, fake)) == pytest.approx(0.0, abs=1e-10)
    half = torch.tensor([0.3, 0.4])  # ‖∇D‖ = 0.5: penalised two-sided, free one-sided
    assert float(gradient_penalty(lambda x: x @ half, real, fake)) == pytest.approx(10 * 0.25)
    assert float(gradient_penalty(lambda x: x @ half, real, fake, one_sided=True)) == pytest.approx(0.0)
    assert float(gradient_penalty(critic, real, fake, one_sided=True)) == pytest.approx(160.0)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss must be one of"):
        generator_loss(torch.zeros(2), "hinge")
    with pytest.raises(ValueError, match="loss must be one of"):
        GAN(loss="hinge")


# -- one step moves one network ------------------------------------------------------------------
def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(module, before):
    return [not torch.equal(p, b) for p, b in zip(module.parameters(), before)]


@pytest.mark.parametrize("arch,loss", [("mlp", "non-saturating"), ("mlp", "wgan-gp"), ("dcgan", "minimax")])
def test_d_step_moves_only_d_and_g_step_moves_only_g(arch, loss):
    torch.manual_seed(0)
    gan = GAN(arch, x_shape=[8, 8], z_dim=4, hidden=[8, 16], loss=loss)
    opt_d, opt_g = gan.make_optimizers(1e-2)
    real = torch.rand(16, 8, 8)
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    gan.discriminator_step(real, opt_d, smoothing=0.1, noise=0.1)
    assert not any(_changed(gan.generator, g0))
    assert any(_changed(gan.discriminator, d0))  # (a WGAN critic's output bias has no gradient)
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    gan.generator_step(16, opt_g, noise=0.1)
    assert not any(_changed(gan.discriminator, d0))
    assert any(_changed(gan.generator, g0))
    assert all(p.grad is None for p in gan.discriminator.parameters())  # no stale gradients for D


def test_k_discriminator_steps_per_generator_step():
    gan = GAN("mlp", x_shape=[2], z_dim=2, hidden=[8], output="linear")
    calls = []
    d_step, g_step = gan.discriminator_step, gan.generator_step
    gan.discriminator_step = lambda *a, **k: calls.append("D") or d_step(*a, **k)
    gan.generator_step = lambda *a, **k: calls.append("G") or g_step(*a, **k)
    opt_d, opt_g = gan.make_optimizers()
    gan.train_step([torch.randn(4, 2)] * 3, opt_d, opt_g)
    assert calls == ["D", "D", "D", "G"]


# -- Parzen windows ------------------------------------------------------------------------------
def test_parzen_matches_the_known_smoothed_density():
    # centres from N(0, I₂) with a Gaussian kernel of std σ: the KDE converges to N(0, (1 + σ²) I₂)
    torch.manual_seed(0)
    centers, sigma = torch.randn(40000, 2), 0.5
    x = torch.tensor([[0.0, 0.0], [1.0, -0.5], [2.0, 1.0]])
    var = 1 + sigma ** 2
    exact = -0.5 * (x ** 2).sum(1) / var - math.log(2 * math.pi * var)
    est = parzen_log_prob(x, centers, sigma)
    assert torch.allclose(est, exact, atol=0.05)


def test_parzen_bernoulli_kernel_is_a_product_of_bernoullis():
    p = torch.tensor([0.9, 0.2, 0.5])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    eps = 0.1
    q = (1 - eps) * p + eps / 2
    exact = (x * q.log() + (1 - x) * (1 - q).log()).sum(1)
    est = parzen_log_prob(x, p.expand(5, 3), eps, kernel="bernoulli")
    assert torch.allclose(est, exact, atol=1e-6)
    # a mass: summing over all 8 binary vectors gives 1
    grid = torch.tensor([[a, b, c] for a in (0.0, 1.0) for b in (0.0, 1.0) for c in (0.0, 1.0)])
    assert float(parzen_log_prob(grid, torch.rand(7, 3), 0.3, kernel="bernoulli").exp().sum()) == pytest.approx(1.0)


def test_bandwidth_chosen_on_validation_data():
    torch.manual_seed(1)
    centers, val = torch.randn(5000, 1), torch.randn(500, 1)
    best, scores = select_parzen_bandwidth(val, centers, candidates=[0.01, 0.1, 0.3, 3.0])
    assert best in (0.1, 0.3)  # too narrow overfits the centres, too wide oversmooths
    assert scores[best] == max(scores.values())
    entropy = 0.5 * math.log(2 * math.pi * math.e)  # −E log N(x; 0, 1)
    assert scores[best] == pytest.approx(-entropy, abs=0.1)


def test_gan_log_prob_needs_a_bandwidth_then_is_finite():
    gan = GAN("mlp", x_shape=[8, 8], z_dim=2, hidden=[8])
    with pytest.raises(ValueError, match="fit_parzen"):
        gan.log_prob(torch.rand(3, 8, 8))
    scores = gan.fit_parzen(torch.rand(20, 8, 8), num_samples=200)
    assert len(scores) > 3 and math.isfinite(float(gan.parzen_bandwidth))
    lp = gan.log_prob(torch.rand(4, 8, 8), num_samples=200)
    assert lp.shape == (4,) and torch.isfinite(lp).all()
    gan.fit_parzen((torch.rand(20, 8, 8) > 0.5).float(), num_samples=200)
    assert bool(gan.parzen_binary)  # binary data: the Bernoulli kernel (a log mass, ≤ 0)
    assert (gan.log_prob((torch.rand(4, 8, 8) > 0.5).float(), num_samples=200) <= 0).all()


# -- helpers: Wasserstein, interpolation -------------------------------------------------------------
def test_wasserstein_1d():
    a = torch.randn(1000)
    assert wasserstein_1d(a, a + 2.5) == pytest.approx(2.5)
    assert wasserstein_1d(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert wasserstein_1d(torch.tensor([0.0]), torch.tensor([0.0, 3.0])) == pytest.approx(1.5)


def test_slerp_keeps_the_norm_and_hits_the_endpoints():
    torch.manual_seed(0)
    z0, z1 = torch.randn(16), torch.randn(16)
    z1 = z1 / z1.norm() * z0.norm()
    t = torch.linspace(0, 1, 7)
    path = slerp(z0, z1, t)
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    assert torch.allclose(path.norm(dim=1), z0.norm().expand(7), atol=1e-4)
    assert float(lerp(z0, z1, t)[3].norm()) < float(z0.norm())  # the straight line cuts inside the sphere


# -- the model as a probgen model --------------------------------------------------------------
def test_constructor_validation():
    with pytest.raises(ValueError, match="arch"):
        GAN("resnet")
    with pytest.raises(ValueError, match="divisible"):
        GAN("dcgan", x_shape=[10, 10], hidden=[8, 8])
    with pytest.raises(ValueError, match="2-D images"):
        GAN("dcgan", x_shape=[64], hidden=[8])
    with pytest.raises(ValueError, match="z_dim"):
        GAN(z_dim=0)


def test_cannot_observe_x():
    with pytest.raises(ValueError, match="no likelihood"):
        GAN().model(torch.rand(2, 8, 8))


def test_save_load_roundtrip(tmp_path):
    from probgen.models import load

    gan = GAN("dcgan", x_shape=[8, 8], z_dim=3, hidden=[4, 8], loss="wgan-gp")
    gan.fit_parzen(torch.rand(10, 8, 8), num_samples=50)
    path = gan.save(tmp_path / "gan.pt")
    back = load(path)
    assert isinstance(back, GAN) and back.config == gan.config
    z = torch.randn(5, 3)
    assert torch.allclose(back.decode(z), gan.eval().decode(z))
    assert float(back.parzen_bandwidth) == float(gan.parzen_bandwidth)
    assert back.sample(4).shape == (4, 8, 8)
    assert back.sample(4, temperature=0.5).shape == (4, 8, 8)


def test_fit_toy_writes_checkpoints_and_resumes(tmp_path):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(128, 1) * 0.3 - 2, torch.randn(128, 1) * 0.3 + 2])
    gan = GAN("mlp", x_shape=[1], z_dim=2, hidden=[16], output="linear")
    seen = []
    gan.fit(x, epochs=2, batch_size=64, progress=False, checkpoint=tmp_path / "g.pt", smoothing=0.1,
            instance_noise=0.2, on_epoch=lambda e, r, f: seen.append((e, f.shape)),
            monitor=lambda s: {"coverage": 1.0 if len(seen) == 0 else 0.5}, monitor_n=10)
    assert [e for e, _ in seen] == [0, 1] and seen[0][1] == (64, 1)  # the fixed-noise samples
    hist = gan.train_result.history
    assert len(hist) == 2 and {"d_loss", "g_loss", "d_real", "d_fake"} <= set(hist[0])
    assert gan.train_result.warnings and "mode collapse" in gan.train_result.warnings[0]
    assert (tmp_path / "g.pt").is_file() and (tmp_path / "g.last.pt").is_file()
    again = GAN("mlp", x_shape=[1], z_dim=2, hidden=[16], output="linear")
    again.fit(x, epochs=3, batch_size=64, progress=False, checkpoint=tmp_path / "g.pt", resume=True)
    assert [r["epoch"] for r in again.train_result.history] == [1, 2, 3]

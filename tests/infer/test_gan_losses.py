"""The game's objectives (infer.gan_losses) on hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from probgen.infer.gan_losses import discriminator_loss, generator_loss, gradient_penalty
from probgen.models import GAN

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


def test_hinge_losses_hand_computed():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # D: mean max(0, 1 - real) + mean max(0, 1 + fake) = (0 + 0.5)/2 + (0 + 1)/2
    assert float(discriminator_loss(real, fake, "hinge")) == pytest.approx(0.75)
    # smoothing lowers the real margin to 1 - s: (0 + 0.4)/2 + 0.5
    assert float(discriminator_loss(real, fake, "hinge", smoothing=0.1)) == pytest.approx(0.7)
    assert float(generator_loss(fake, "hinge")) == pytest.approx(1.5)
    # a confidently rejected fake still gets a full-size gradient (no saturation)
    f = torch.tensor([-8.0], requires_grad=True)
    (g,) = torch.autograd.grad(generator_loss(f, "hinge"), f)
    assert float(g) == pytest.approx(-1.0)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss must be one of"):
        generator_loss(torch.zeros(2), "lsgan")
    with pytest.raises(ValueError, match="loss must be one of"):
        GAN(loss="lsgan")

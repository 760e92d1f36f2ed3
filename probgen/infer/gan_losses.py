"""The GAN game's objectives, as functions of the discriminator's logits (testable by hand).

Four objectives, with ``l = D(x)`` the discriminator's logit (critic value for WGAN):

- ``"minimax"``: D maximises log σ(l_real) + log(1 − σ(l_fake)); G *minimises* log(1 − σ(l_fake)).
- ``"non-saturating"``: same D; G maximises log σ(l_fake) (same fixed point, strong early gradients).
- ``"wgan-gp"``: D is a critic maximising E[l_real] − E[l_fake] − λ E[(‖∇_x̂ D(x̂)‖ − 1)²]
  (Gulrajani et al. 2017), with ``n_critic`` critic steps per generator step.
- ``"hinge"``: D minimises E[max(0, 1 − l_real)] + E[max(0, 1 + l_fake)]; G minimises −E[l_fake]
  (Lim & Ye 2017; Miyato et al. 2018, with a spectrally normalised D).

The trainer that plays them is :mod:`probgen.infer.adversarial`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..nn import LOSSES, check_loss  # the objectives' names live beside the networks (models check them)

__all__ = ["LOSSES", "SCORES", "check_loss", "discriminator_loss", "generator_loss", "gradient_penalty"]

#: objectives whose D output is a score, not a logit (shown raw, not through σ)
SCORES = ("wgan-gp", "hinge")


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, loss: str, *, smoothing: float = 0.0) -> torch.Tensor:
    """Loss the discriminator minimises, from its logits on a real and a fake batch.

    :param real: ``D(x)`` logits (critic values for WGAN) on real data, ``[n]``.
    :param fake: ``D(G(z))`` on generated data, ``[m]``.
    :param loss: one of :data:`probgen.nn.LOSSES`.
    :param smoothing: one-sided label smoothing: real targets become ``1 − smoothing`` (fake
        targets stay 0, Salimans et al. 2016); hinge: the real margin becomes ``1 − smoothing``.
        Ignored by WGAN-GP.
    :return: scalar. With all logits 0 (D undecided) the cross-entropy losses equal 2 log 2.
    """
    if loss == "wgan-gp":
        return fake.mean() - real.mean()  # the gradient penalty is added by the caller
    if loss == "hinge":
        return F.relu(1.0 - smoothing - real).mean() + F.relu(1.0 + fake).mean()
    check_loss(loss)
    target = torch.full_like(real, 1.0 - smoothing)
    return (F.binary_cross_entropy_with_logits(real, target)
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def generator_loss(fake: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss the generator minimises, from the discriminator's logits ``D(G(z))`` ``[m]``.

    minimax: E log(1 − σ(l)) = −E softplus(l); non-saturating: −E log σ(l) = E softplus(−l);
    wgan-gp and hinge: −E l.
    """
    if loss == "minimax":
        return -F.softplus(fake).mean()
    if loss == "non-saturating":
        return F.softplus(-fake).mean()
    if loss in SCORES:
        return -fake.mean()
    check_loss(loss)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     *, weight: float = 10.0, one_sided: bool = False,
                     generator: torch.Generator | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``weight · E[(‖∇_x̂ D(x̂)‖₂ − 1)²]`` at random points x̂ between real and fake.

    :param critic: the discriminator, ``x [n, ...] → [n]``.
    :param real: real batch ``[n, ...]``; ``fake``: generated batch, same shape (detached).
    :param one_sided: penalise only norms above 1, ``max(0, ‖∇‖ − 1)²`` (Petzka et al. 2018).
        In one dimension the two-sided penalty is a barrier between slopes +1 and −1: a critic
        that starts with the wrong sign stays there and the generator drifts away (see
        ``docs/gan.md``); the one-sided penalty lets the slope pass through 0.
    :param eps: the mixing weights ``[n, 1, ...]`` (default: drawn here, uniform on [0, 1]).
    """
    if eps is None:
        eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)  # n × ...
    excess = grad.reshape(len(grad), -1).norm(dim=1) - 1
    if one_sided:
        excess = excess.clamp_min(0)
    return weight * (excess ** 2).mean()

"""Generative adversarial networks: an implicit model trained by a game, not by likelihood.

The generative story is as short as the VAE's, minus the likelihood::

    z ~ N(0, I)        x = G(z)            (no p(x | z): x is a deterministic function of z)

Because x = G(z) has no density we can evaluate, there is no ELBO to maximise. Instead a
discriminator D(x) learns to tell real examples from G's, and G learns to fool it
(Goodfellow et al. 2014). The loop in :meth:`GAN.fit` / :meth:`GAN.train_step` is the whole
algorithm: ``k`` discriminator steps, then one generator step. **Only the discriminator ever
sees real data**; the generator learns about the data exclusively through D's gradients.

Three objectives (``loss=``), with ``l = D(x)`` the discriminator's logit (critic value for WGAN):

- ``"minimax"``: D maximises log σ(l_real) + log(1 − σ(l_fake)); G *minimises* log(1 − σ(l_fake)).
  The original game; G's gradient vanishes when D confidently rejects its samples.
- ``"non-saturating"``: same D; G maximises log σ(l_fake) instead (same fixed point, strong
  gradients early on). The practical default.
- ``"wgan-gp"``: D is a critic; it maximises E[l_real] − E[l_fake] − λ E[(‖∇_x̂ D(x̂)‖ − 1)²]
  (Gulrajani et al. 2017), with ``n_critic`` critic steps per generator step.

GANs have no likelihood. :meth:`GAN.log_prob` is a **Parzen-window estimate** (a kernel density
on generator samples, bandwidth chosen on validation data, as in Goodfellow et al. 2014). It is a
weak estimator — biased, high-variance in high dimension, and it rewards blurry spread as much
as sharp samples — so it is there only to place GANs in ``probgen compare``'s table. Judge
samples with a classifier (``probgen gan-eval``: class coverage, confidence, Fréchet distance).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from ..data import batches
from ..io import load_checkpoint
from ..nn import check_hidden, check_positive_int
from ..story import Story, check_data
from ..train import DivergenceError, progress_bar, rng_state, set_rng_state

__all__ = [
    "GAN", "GANResult", "LOSSES", "ARCHS",
    "MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator",
    "discriminator_loss", "generator_loss", "gradient_penalty",
    "parzen_log_prob", "select_parzen_bandwidth", "wasserstein_1d", "slerp", "lerp",
]

LOSSES = ("minimax", "non-saturating", "wgan-gp")
ARCHS = ("mlp", "dcgan")
OUTPUTS = ("sigmoid", "linear")


# ---------------------------------------------------------------------------------------------
# Networks: plain nn.Modules. G: z [n × z_dim] → x [n × *x_shape]; D: x → logit [n]
# ---------------------------------------------------------------------------------------------
class MLPGenerator(nn.Module):
    """``z → hidden → x``; sigmoid output for images in [0, 1], linear for real-valued toys."""

    def __init__(self, z_dim: int, x_shape: Sequence[int], hidden: Sequence[int], *, output: str = "sigmoid"):
        super().__init__()
        self.x_shape = tuple(x_shape)
        dims = [z_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(dims[-1], math.prod(self.x_shape)))
        if output == "sigmoid":
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(len(z), *self.x_shape)  # n × *x_shape


class MLPDiscriminator(nn.Module):
    """``x → hidden (LeakyReLU 0.2) → one logit``; no batch norm, so the gradient penalty is valid."""

    def __init__(self, x_shape: Sequence[int], hidden: Sequence[int], *, dropout: float = 0.0):
        super().__init__()
        dims = [math.prod(x_shape), *reversed(tuple(hidden))]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x), -1)).squeeze(-1)  # n


class ConvGenerator(nn.Module):
    """DCGAN generator: linear → ``C×h×w`` → (ConvTranspose 4/2/1, BN, ReLU)* → 1×H×W.

    ``channels`` lists the widths from the image side inwards (``(64, 128)``: the smallest
    feature map has 128 channels); each entry doubles the resolution, so H and W must be
    divisible by ``2 ** len(channels)`` (8×8 digits: 2×2 → 4×4 → 8×8; MNIST: 7×7 → 14×14 → 28×28).
    """

    def __init__(self, z_dim: int, x_shape: Sequence[int], channels: Sequence[int], *, output: str = "sigmoid"):
        super().__init__()
        self.x_shape = tuple(x_shape)
        h, w = _conv_base(self.x_shape, len(channels))
        chans = list(reversed(tuple(channels)))  # inner → outer, e.g. [128, 64]
        self.base = (chans[0], h, w)
        self.project = nn.Sequential(nn.Linear(z_dim, chans[0] * h * w), nn.BatchNorm1d(chans[0] * h * w),
                                     nn.ReLU())
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU()]
        layers.append(nn.ConvTranspose2d(chans[-1], 1, 4, 2, 1))
        if output == "sigmoid":
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).reshape(len(z), *self.base)  # n × C × h × w
        return self.net(h).reshape(len(z), *self.x_shape)  # n × H × W


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator: (Conv 4/2/1, LeakyReLU 0.2)* → linear → logit. No batch norm (WGAN-GP safe)."""

    def __init__(self, x_shape: Sequence[int], channels: Sequence[int], *, dropout: float = 0.0):
        super().__init__()
        h, w = _conv_base(tuple(x_shape), len(channels))
        chans = [1, *channels]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(chans[-1] * h * w, 1))
        self.x_shape = tuple(x_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x), 1, *self.x_shape[-2:])).squeeze(-1)  # n


def _conv_base(x_shape: tuple, n_up: int) -> tuple[int, int]:
    if len(x_shape) != 2:
        raise ValueError(f"arch='dcgan' needs 2-D images, got x_shape {list(x_shape)}; use arch='mlp'")
    f = 2 ** n_up
    if x_shape[0] % f or x_shape[1] % f:
        raise ValueError(f"arch='dcgan' with {n_up} layers needs H and W divisible by {f}, got {list(x_shape)}")
    return x_shape[0] // f, x_shape[1] // f


# ---------------------------------------------------------------------------------------------
# The objectives, as functions of the discriminator's logits (testable by hand)
# ---------------------------------------------------------------------------------------------
def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, loss: str, *, smoothing: float = 0.0) -> torch.Tensor:
    """Loss the discriminator minimises, from its logits on a real and a fake batch.

    :param real: ``D(x)`` logits (critic values for WGAN) on real data, ``[n]``.
    :param fake: ``D(G(z))`` on generated data, ``[m]``.
    :param loss: one of :data:`LOSSES`.
    :param smoothing: one-sided label smoothing: real targets become ``1 − smoothing`` (fake
        targets stay 0, Salimans et al. 2016). Ignored by WGAN-GP.
    :return: scalar. With all logits 0 (D undecided) the cross-entropy losses equal 2 log 2.
    """
    if loss == "wgan-gp":
        return fake.mean() - real.mean()  # the gradient penalty is added by the caller
    _check_loss(loss)
    target = torch.full_like(real, 1.0 - smoothing)
    return (F.binary_cross_entropy_with_logits(real, target)
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def generator_loss(fake: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss the generator minimises, from the discriminator's logits ``D(G(z))`` ``[m]``.

    minimax: E log(1 − σ(l)) = −E softplus(l); non-saturating: −E log σ(l) = E softplus(−l);
    wgan-gp: −E l.
    """
    if loss == "minimax":
        return -F.softplus(fake).mean()
    if loss == "non-saturating":
        return F.softplus(-fake).mean()
    if loss == "wgan-gp":
        return -fake.mean()
    _check_loss(loss)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     *, weight: float = 10.0, one_sided: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``weight · E[(‖∇_x̂ D(x̂)‖₂ − 1)²]`` at random points x̂ between real and fake.

    :param critic: the discriminator, ``x [n, ...] → [n]``.
    :param real: real batch ``[n, ...]``; ``fake``: generated batch, same shape (detached).
    :param one_sided: penalise only norms above 1, ``max(0, ‖∇‖ − 1)²`` (Petzka et al. 2018).
        In one dimension the two-sided penalty is a barrier between slopes +1 and −1: a critic
        that starts with the wrong sign stays there and the generator drifts away (see
        ``docs/gan.md``); the one-sided penalty lets the slope pass through 0.
    """
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)  # n × ...
    excess = grad.reshape(len(grad), -1).norm(dim=1) - 1
    if one_sided:
        excess = excess.clamp_min(0)
    return weight * (excess ** 2).mean()


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


# ---------------------------------------------------------------------------------------------
# Parzen windows, 1-D Wasserstein, and paths through code space
# ---------------------------------------------------------------------------------------------
def parzen_log_prob(x: torch.Tensor, centers: torch.Tensor, bandwidth: float, *, kernel: str = "gaussian",
                    chunk: int = 256) -> torch.Tensor:
    """Kernel density estimate ``log (1/m) Σ_i K(x | c_i)`` for each row of ``x``.

    :param x: points ``[n, ...]``; ``centers``: samples ``[m, ...]`` (flattened to D values).
    :param bandwidth: ``gaussian``: kernel std σ, K = N(x; c, σ² I) — a log *density*.
        ``bernoulli`` (binary data): K = Π_d Bernoulli(x_d; (1 − ε) c_d + ε/2) with ε = bandwidth
        in (0, 1] — a log *mass*, comparable with the likelihoods of binary models.
    :return: ``[n]`` log-densities (nats).
    """
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    x = x.reshape(len(x), -1).double()
    c = centers.reshape(len(centers), -1).double().to(x.device)
    m, d = c.shape
    out = []
    if kernel == "gaussian":
        c2 = (c ** 2).sum(1)  # m
        norm = -0.5 * d * math.log(2 * math.pi * bandwidth ** 2)
        for xb in x.split(chunk):
            sq = (xb ** 2).sum(1, keepdim=True) + c2 - 2 * xb @ c.T  # chunk × m squared distances
            out.append(torch.logsumexp(-sq.clamp_min(0) / (2 * bandwidth ** 2), dim=1) + norm - math.log(m))
    elif kernel == "bernoulli":
        if bandwidth > 1:
            raise ValueError(f"a bernoulli kernel needs bandwidth in (0, 1], got {bandwidth}")
        p = (1 - bandwidth) * c.clamp(0, 1) + bandwidth / 2  # m × D, never 0 or 1
        lp, lq = p.log(), (1 - p).log()
        for xb in x.split(chunk):
            ll = xb @ lp.T + (1 - xb) @ lq.T  # chunk × m
            out.append(torch.logsumexp(ll, dim=1) - math.log(m))
    else:
        raise ValueError(f"kernel must be 'gaussian' or 'bernoulli', got {kernel!r}")
    return torch.cat(out).float()


def select_parzen_bandwidth(val: torch.Tensor, centers: torch.Tensor, *, kernel: str = "gaussian",
                            candidates: Sequence[float] | None = None) -> tuple[float, dict[float, float]]:
    """Pick the bandwidth maximising the mean Parzen log-likelihood of validation data.

    :return: ``(best bandwidth, {bandwidth: mean validation log-likelihood})``.
    """
    if candidates is None:
        candidates = ([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0] if kernel == "bernoulli"
                      else torch.logspace(-2, 0.5, 16).tolist())  # 0.01 … 3.2
    scores = {float(s): float(parzen_log_prob(val, centers, float(s), kernel=kernel).mean()) for s in candidates}
    best = max(scores, key=scores.get)
    return best, scores


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> float:
    """Earth mover's distance W₁ between two 1-D samples (exact, via quantile functions)."""
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1).sort().values
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1).sort().values
    if len(a) == len(b):
        return float((a - b).abs().mean())
    # integrate |F_a^{-1}(u) − F_b^{-1}(u)| over the merged quantile grid
    u = torch.cat([torch.arange(1, len(a) + 1) / len(a), torch.arange(1, len(b) + 1) / len(b)]).double().unique()
    du = torch.diff(torch.cat([torch.zeros(1, dtype=u.dtype), u]))
    qa = a[(u * len(a)).ceil().long().clamp(1, len(a)) - 1]
    qb = b[(u * len(b)).ceil().long().clamp(1, len(b)) - 1]
    return float(((qa - qb).abs() * du).sum())


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line ``(1 − t) z0 + t z1`` for each t: ``[len(t) × z_dim]``."""
    t = t.reshape(-1, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models).

    A Gaussian code in d dimensions lies near the sphere of radius √d; the straight line's
    midpoint has norm ≈ √(d/2), in a region the generator never saw. Slerp follows the great
    circle and keeps the norm in the typical range.
    """
    t = t.reshape(-1, 1)
    cos = (z0 @ z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega.sin().abs()) < 1e-6:  # (anti)parallel codes: the line is the best we can do
        return lerp(z0, z1, t)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / omega.sin()


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
@dataclass
class GANResult:
    """What happened during :meth:`GAN.fit`: one record per epoch, and the warnings raised."""

    history: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


class GAN(Story):
    """A GAN: generator G(z), discriminator D(x), one of three adversarial objectives.

    :param arch: ``"mlp"`` (vectors, toy data, small images) or ``"dcgan"`` (2-D images whose
        sides are divisible by ``2 ** len(hidden)``: 8×8 digits, 28×28 MNIST).
    :param x_shape: shape of one example, e.g. ``[8, 8]`` or ``[1]`` for a 1-D toy.
    :param z_dim: size of the code z ~ N(0, I).
    :param hidden: MLP: generator hidden widths (the discriminator mirrors them);
        dcgan: channel widths from the image side inwards (``[64, 128]``).
    :param loss: ``"minimax"``, ``"non-saturating"`` or ``"wgan-gp"``.
    :param output: ``"sigmoid"`` (images in [0, 1]) or ``"linear"`` (real-valued data).
    :param dropout: dropout in the discriminator (a regulariser for small data sets).
    :param n_fixed: number of fixed codes whose images are shown after every epoch.
    """

    kind = "gan"
    has_exact_log_prob = False

    def __init__(self, arch: str = "mlp", *, x_shape: Sequence[int] = (8, 8), z_dim: int = 16,
                 hidden: Sequence[int] = (128, 256), loss: str = "non-saturating", output: str = "sigmoid",
                 dropout: float = 0.0, n_fixed: int = 64):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        _check_loss(loss)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if isinstance(x_shape, int):
            x_shape = (x_shape,)
        self.x_shape = tuple(check_positive_int("x_shape entry", int(s)) for s in x_shape)
        if not self.x_shape:
            raise ValueError("x_shape must have at least one dimension")
        self.x_dim = math.prod(self.x_shape)
        self.z_dim = check_positive_int("z_dim", z_dim)
        hidden = check_hidden(hidden)
        if arch == "dcgan" and not hidden:
            raise ValueError("arch='dcgan' needs at least one channel width in hidden")
        self.arch, self.loss, self.output = arch, loss, output
        if arch == "mlp":
            self.generator = MLPGenerator(z_dim, self.x_shape, hidden, output=output)
            self.discriminator = MLPDiscriminator(self.x_shape, hidden, dropout=dropout)
        else:
            self.generator = ConvGenerator(z_dim, self.x_shape, hidden, output=output)
            self.discriminator = ConvDiscriminator(self.x_shape, hidden, dropout=dropout)
        # fixed codes for the per-epoch sample grid (saved, so a resumed run shows the same codes)
        self.register_buffer("fixed_z", torch.randn(check_positive_int("n_fixed", n_fixed), z_dim,
                                                    generator=torch.Generator().manual_seed(1234)))
        # Parzen bandwidth chosen on validation data (NaN until fit_parzen runs)
        self.register_buffer("parzen_bandwidth", torch.tensor(float("nan")))
        self.register_buffer("parzen_binary", torch.tensor(False))

    # -- the generative story: z ~ N(0, I), x = G(z). No likelihood term. -----------------
    def model(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """The implicit story as a Pyro program. It cannot condition on ``x``: ``G(z)`` has no
        density, which is exactly why GANs are trained by a game instead of SVI."""
        if x is not None:
            raise ValueError("a GAN has no likelihood p(x | z): it cannot observe x (use GAN.fit)")
        self.register_params()
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(torch.zeros(n, self.z_dim, device=self.device), 1.0).to_event(1))
            return pyro.deterministic("x", self.generator(z), event_dim=len(self.x_shape))

    def guide(self, x=None, y=None, n=None):
        raise ValueError("a GAN has no encoder q(z | x); train it with GAN.fit, score it with log_prob (Parzen)")

    def prepare(self, x, y=None):
        x = check_data(x, x_dim=self.x_dim)
        if self.output == "sigmoid" and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"x: a sigmoid generator makes values in [0, 1], the data has "
                             f"{float(x.min()):.3g}..{float(x.max()):.3g} (rescale it, or use output='linear')")
        return x.reshape(len(x), *self.x_shape), y

    # -- sampling and the code space ----------------------------------------------------
    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) for codes ``[n × z_dim]`` → ``[n, *x_shape]`` (eval mode: batch norm uses running stats)."""
        was = self.generator.training
        self.generator.eval()
        try:
            return self.generator(torch.as_tensor(z, dtype=torch.float32, device=self.device))
        finally:
            self.generator.train(was)

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` examples: z ~ N(0, T² I), x = G(z).

        :param temperature: scale T of the codes (< 1 trades variety for typicality, the
            "truncation trick"); default 1.
        :param z: codes to decode instead of drawing them.
        """
        n = check_positive_int("n", n)
        if z is None:
            z = torch.randn(n, self.z_dim, device=self.device)
            if temperature is not None:
                if not temperature > 0:
                    raise ValueError(f"temperature must be > 0, got {temperature}")
                z = z * temperature
        return self.decode(z)

    # -- one step of the game --------------------------------------------------------------
    def discriminator_step(self, real: torch.Tensor, opt_d: torch.optim.Optimizer, *, smoothing: float = 0.0,
                           noise: float = 0.0, gp_weight: float = 10.0, gp_one_sided: bool = False) -> dict:
        """One update of D: real data against detached fakes. G's parameters get no gradient.

        :param real: a real minibatch ``[n, *x_shape]`` — the only place real data enters.
        :param smoothing: one-sided label smoothing for the real targets.
        :param noise: instance-noise std added to *both* of D's inputs.
        """
        D = self.discriminator
        with torch.no_grad():
            fake = self.generator(torch.randn(len(real), self.z_dim, device=real.device))  # n × *x_shape
        if noise > 0:  # instance noise: blur both distributions so that their supports overlap
            real = real + noise * torch.randn_like(real)
            fake = fake + noise * torch.randn_like(fake)
        d_real, d_fake = D(real), D(fake)  # n logits each
        d_loss = discriminator_loss(d_real, d_fake, self.loss, smoothing=smoothing)
        if self.loss == "wgan-gp":
            d_loss = d_loss + gradient_penalty(D, real, fake, weight=gp_weight, one_sided=gp_one_sided)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        return {"d_loss": float(d_loss.detach()), "d_real": self._d_stat(d_real), "d_fake": self._d_stat(d_fake)}

    def generator_step(self, m: int, opt_g: torch.optim.Optimizer, *, noise: float = 0.0) -> dict:
        """One update of G from ``m`` fresh codes. **No real data here**: G learns about the
        data only through D's verdict on G(z), by back-propagating through D (whose parameters
        ``opt_g`` does not hold, and whose gradients are cleared afterwards)."""
        fake = self.generator(torch.randn(m, self.z_dim, device=self.device))  # m × *x_shape
        if noise > 0:
            fake = fake + noise * torch.randn_like(fake)
        g_loss = generator_loss(self.discriminator(fake), self.loss)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        self.discriminator.zero_grad(set_to_none=True)  # D's .grad from this pass is not D's business
        return {"g_loss": float(g_loss.detach())}

    def train_step(self, real_batches: Sequence[torch.Tensor], opt_d: torch.optim.Optimizer,
                   opt_g: torch.optim.Optimizer, *, smoothing: float = 0.0, noise: float = 0.0,
                   gp_weight: float = 10.0, gp_one_sided: bool = False, batch_size: int | None = None) -> dict:
        """One round of the game: k discriminator steps (one per real batch), then one generator step.

        :return: the last D step's loss and mean outputs (probabilities D(x), D(G(z)); critic
            values for WGAN-GP) and the G step's loss.
        """
        for real in real_batches:
            stats = self.discriminator_step(real, opt_d, smoothing=smoothing, noise=noise, gp_weight=gp_weight,
                                            gp_one_sided=gp_one_sided)
        stats.update(self.generator_step(batch_size or len(real_batches[-1]), opt_g, noise=noise))
        return stats

    @torch.no_grad()
    def _d_stat(self, logits: torch.Tensor) -> float:
        return float(logits.detach().mean() if self.loss == "wgan-gp" else torch.sigmoid(logits).mean())

    def make_optimizers(self, lr: float = 2e-4, *, beta1: float = 0.5,
                        beta2: float | None = None) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        """Adam for D and for G, each over its own network only (β1 = 0.5 as in DCGAN)."""
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0 <= beta1 < 1:
            raise ValueError(f"beta1 must be in [0, 1), got {beta1}")
        beta2 = beta2 if beta2 is not None else (0.9 if self.loss == "wgan-gp" else 0.999)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(beta1, beta2))
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(beta1, beta2))
        return opt_d, opt_g

    # -- the training loop -------------------------------------------------------------------
    def fit(self, x, *, y=None, val=None, val_y=None, epochs: int = 100, batch_size: int = 64,
            lr: float = 2e-4, d_steps: int = 1, n_critic: int = 5, smoothing: float = 0.0,
            instance_noise: float = 0.0, gp_weight: float = 10.0, gp_one_sided: bool = False, beta1: float = 0.5,
            progress: bool = True, checkpoint: str | Path | None = None, resume: bool = False,
            monitor: Callable[[torch.Tensor], dict] | None = None, monitor_n: int = 500,
            collapse_drop: float = 0.2,
            on_epoch: Callable[[int, dict, torch.Tensor], None] | None = None,
            log: Callable[[str], None] | None = None, **unused) -> "GAN":
        """Train the game on ``x``. ``y``/``val`` are accepted for API symmetry and ignored
        (``val`` is used for the Parzen bandwidth when given).

        :param epochs: passes over the real data (each real batch feeds one D step).
        :param d_steps: discriminator steps per generator step (k in Goodfellow et al. 2014).
        :param n_critic: critic steps per generator step for WGAN-GP (replaces ``d_steps``).
        :param smoothing: one-sided label smoothing (e.g. 0.1); not used by WGAN-GP.
        :param instance_noise: std of Gaussian noise added to D's inputs, annealed linearly to 0.
        :param gp_one_sided: WGAN-GP: penalise only gradient norms above 1 (see :func:`gradient_penalty`).
        :param beta1: Adam β1 (0.5, as in DCGAN).
        :param checkpoint: the model after every epoch goes here (atomic); the resumable state
            (optimizers, RNG, history) beside it as ``<stem>.last.pt``.
        :param monitor: ``fn(samples) -> dict`` run every epoch on ``monitor_n`` samples from fixed
            codes, e.g. a classifier's ``coverage``; when coverage falls ``collapse_drop`` below its
            best so far, a mode-collapse warning is logged (once per fall).
        :param on_epoch: ``fn(epoch, record, fixed_samples)`` after every epoch (sample grids, plots).
        """
        if unused:
            raise ValueError(f"GAN.fit: unknown option(s) {', '.join(sorted(unused))}")
        x, _ = self.prepare(x)
        for name, v in (("epochs", epochs),):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        check_positive_int("batch_size", batch_size)
        check_positive_int("d_steps", d_steps)
        check_positive_int("n_critic", n_critic)
        if not 0 <= smoothing < 0.5:
            raise ValueError(f"smoothing must be in [0, 0.5), got {smoothing}")
        if instance_noise < 0:
            raise ValueError(f"instance_noise must be >= 0, got {instance_noise}")
        log = log or _default_log(progress)
        k = n_critic if self.loss == "wgan-gp" else d_steps
        x = x.to(self.device)
        opt_d, opt_g = self.make_optimizers(lr, beta1=beta1)
        result = GANResult()
        ckpt = Path(checkpoint) if checkpoint is not None else None
        last = ckpt.with_name(ckpt.stem + ".last.pt") if ckpt is not None else None
        start_epoch, best_coverage, collapsed = 0, -1.0, False
        if resume and last is not None and last.is_file():
            payload = load_checkpoint(last)
            if payload["kind"] != self.kind:
                raise ValueError(f"{last}: resume file holds a {payload['kind']!r} model, not a GAN")
            self.load_state_dict(payload["state_dict"])
            ex = payload["extra"]
            opt_d.load_state_dict(ex["opt_d"])
            opt_g.load_state_dict(ex["opt_g"])
            set_rng_state(ex["rng"])
            start_epoch, result.history = ex["epoch"], ex["history"]
            result.steps, best_coverage = ex["steps"], ex["best_coverage"]

        shuffle_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
        steps_per_epoch = max(1, math.ceil(len(x) / batch_size) // k)
        total_steps = max(1, epochs * steps_per_epoch)
        t0 = time.perf_counter()
        bar = progress_bar(range(start_epoch, epochs), progress, "gan")
        for epoch in bar:
            self.train()
            sums: dict[str, float] = {}
            pending: list[torch.Tensor] = []
            n_g = 0
            for xb, _ in batches(x, batch_size, shuffle=True, generator=shuffle_gen):
                pending.append(xb)
                if len(pending) < k:
                    continue
                noise = instance_noise * max(0.0, 1 - result.steps / total_steps)  # annealed to 0
                stats = self.train_step(pending, opt_d, opt_g, smoothing=smoothing, noise=noise,
                                        gp_weight=gp_weight, gp_one_sided=gp_one_sided, batch_size=batch_size)
                pending = []
                result.steps += 1
                n_g += 1
                if not all(math.isfinite(v) for v in stats.values()):
                    raise DivergenceError(f"GAN losses became {stats} at epoch {epoch + 1}; "
                                          "try a smaller --lr or another --loss")
                for key, v in stats.items():
                    sums[key] = sums.get(key, 0.0) + v
                if progress:
                    bar.set_postfix(D=f"{stats['d_loss']:.3f}", G=f"{stats['g_loss']:.3f}",
                                    **{"D(x)": f"{stats['d_real']:.2f}", "D(G(z))": f"{stats['d_fake']:.2f}"})
            self.eval()
            record = {"epoch": epoch + 1, "steps": result.steps, "seconds": time.perf_counter() - t0,
                      **{key: v / max(n_g, 1) for key, v in sums.items()}}
            fixed = self.decode(self.fixed_z)  # the same codes every epoch: watch G learn
            if monitor is not None:  # e.g. a classifier's coverage of the digit classes
                samples = self.decode(torch.randn(monitor_n, self.z_dim, generator=torch.Generator().manual_seed(4321)))
                record.update({key: v for key, v in monitor(samples).items() if isinstance(v, (int, float, bool))})
                cov = record.get("coverage")
                if cov is not None:
                    dropped = cov < best_coverage - collapse_drop + 1e-9
                    if dropped and not collapsed:  # once per drop, not every epoch it stays low
                        msg = (f"warning: possible mode collapse at epoch {epoch + 1}: classifier coverage "
                               f"{cov:.2f} fell from its best {best_coverage:.2f}")
                        result.warnings.append(msg)
                        record["mode_collapse_warning"] = True
                        log(msg)
                    collapsed = dropped
                    best_coverage = max(best_coverage, cov)
            result.history.append(record)
            if on_epoch is not None:
                on_epoch(epoch, record, fixed)
            if ckpt is not None:
                self.save(ckpt, extra={"epoch": epoch + 1, "history": result.history})
                self.save(last, extra={"epoch": epoch + 1, "history": result.history, "steps": result.steps,
                                       "best_coverage": best_coverage, "rng": rng_state(),
                                       "opt_d": opt_d.state_dict(), "opt_g": opt_g.state_dict()})
        self.eval()
        result.seconds = time.perf_counter() - t0
        self.train_result = result
        if val is not None:
            self.fit_parzen(val)
        return self

    # -- a (weak) likelihood: Parzen windows on generator samples ------------------------
    def _kernel(self, binary: bool | None = None) -> str:
        return "bernoulli" if (bool(self.parzen_binary) if binary is None else binary) else "gaussian"

    @torch.no_grad()
    def fit_parzen(self, val, *, num_samples: int = 10000, binary: bool | None = None,
                   seed: int = 0) -> dict[float, float]:
        """Choose the Parzen bandwidth on validation data (Goodfellow et al. 2014 protocol).

        :param val: validation examples ``[n, *x_shape]``.
        :param binary: use the Bernoulli kernel (a log mass, for binary data); default: whether
            ``val`` holds only 0s and 1s.
        :return: ``{bandwidth: mean validation log-likelihood}``; the best is stored in the model.
        """
        val, _ = self.prepare(val)
        if binary is None:
            binary = bool(((val == 0) | (val == 1)).all()) and self.output == "sigmoid"
        centers = self._centers(num_samples, seed)
        best, scores = select_parzen_bandwidth(val.to(self.device), centers, kernel=self._kernel(binary))
        self.parzen_bandwidth.fill_(best)
        self.parzen_binary.fill_(bool(binary))
        return scores

    def _centers(self, num_samples: int, seed: int) -> torch.Tensor:
        gen = torch.Generator(device=self.device).manual_seed(seed)
        z = torch.randn(check_positive_int("num_samples", num_samples), self.z_dim, device=self.device, generator=gen)
        return torch.cat([self.decode(zb) for zb in z.split(4096)])

    @torch.no_grad()
    def log_prob(self, x, y=None, *, num_samples: int = 10000, bandwidth: float | None = None,
                 seed: int = 0) -> torch.Tensor:
        """Parzen-window estimate of log p(x) from ``num_samples`` generator samples.

        **A weak estimator**: a kernel density on samples, not the GAN's (non-existent)
        likelihood; it is biased and very noisy in high dimension (Theis et al. 2016). The
        bandwidth comes from :meth:`fit_parzen` (run on validation data) unless given.
        """
        x, _ = self.prepare(x)
        bw = float(self.parzen_bandwidth) if bandwidth is None else float(bandwidth)
        if math.isnan(bw):
            raise ValueError("no Parzen bandwidth: call fit_parzen(val) first, or pass bandwidth=")
        centers = self._centers(num_samples, seed)
        return parzen_log_prob(x.to(self.device), centers, bw, kernel=self._kernel())


def _default_log(progress: bool) -> Callable[[str], None]:
    if progress:
        from tqdm.auto import tqdm

        return lambda msg: tqdm.write(msg, file=sys.stderr)  # above the bar, not through it
    return lambda msg: print(msg, file=sys.stderr)

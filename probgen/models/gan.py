"""Generative adversarial networks: an implicit model trained by a game, not by likelihood.

The generative story is as short as the VAE's, minus the likelihood::

    z ~ N(0, I)        x = G(z)            (no p(x | z): x is a deterministic function of z)

Because x = G(z) has no density we can evaluate, there is no ELBO to maximise. Instead a
discriminator D(x) learns to tell real examples from G's, and G learns to fool it
(Goodfellow et al. 2014). The loop in :func:`probgen.infer.adversarial.fit_adversarial` is the whole
algorithm: ``k`` discriminator steps, then one generator step. **Only the discriminator ever
sees real data**; the generator learns about the data exclusively through D's gradients.

Three objectives (``loss=``), with ``l = D(x)`` the discriminator's logit (critic value for WGAN):

- ``"minimax"``: D maximises log σ(l_real) + log(1 − σ(l_fake)); G *minimises* log(1 − σ(l_fake)).
  The original game; G's gradient vanishes when D confidently rejects its samples.
- ``"non-saturating"``: same D; G maximises log σ(l_fake) instead (same fixed point, strong
  gradients early on). The practical default.
- ``"wgan-gp"``: D is a critic; it maximises E[l_real] − E[l_fake] − λ E[(‖∇_x̂ D(x̂)‖ − 1)²]
  (Gulrajani et al. 2017), with ``n_critic`` critic steps per generator step.
- ``"hinge"``: D minimises E[max(0, 1 − l_real)] + E[max(0, 1 + l_fake)], G maximises E[l_fake]
  (the SN-GAN objective, with ``spectral_norm=True``).

Two network options stabilise the game: ``spectral_norm`` (D's layers divided by their largest
singular value) and ``ema`` (sampling from an exponential moving average of G's weights, which
averages out the generator's orbit around the equilibrium). Both are off by default in the
Python API; ``probgen train gan`` turns them on (see ``docs/gan.md`` for the measurements).

GANs have no likelihood. :meth:`GAN.log_prob` is a **Parzen-window estimate** (a kernel density
on generator samples, bandwidth chosen on validation data, as in Goodfellow et al. 2014). It is a
weak estimator — biased, high-variance in high dimension, and it rewards blurry spread as much
as sharp samples — so it is there only to place GANs in ``probgen compare``'s table. Judge
samples with a classifier (``probgen gan-eval``: class coverage, confidence, Fréchet distance).
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import pyro
import pyro.distributions as dist
import torch

from ..data import check_data
from ..data.safe import memory_budget
from ..nn import (OUTPUTS, ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator, check_hidden,
                  check_loss, check_positive_int)
from ..parzen import parzen_log_prob, select_parzen_bandwidth
from ..story import Story, Traits

__all__ = ["GAN", "ARCHS"]

ARCHS = ("mlp", "dcgan")


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
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
    :param spectral_norm: spectrally normalise every layer of the discriminator (Miyato et al. 2018).
    :param ema: decay ``d`` of an exponential moving average of the generator's weights (e.g.
        0.999); when > 0, :meth:`decode` and :meth:`sample` use the average (``generator_ema``).
        0: off.
    :param n_fixed: number of fixed codes whose images are shown after every epoch.
    """

    kind = "gan"
    # trained by the game (probgen.infer.adversarial), scored by Parzen windows: no guide, no likelihood
    traits = Traits(trainers=("adversarial",), estimator="parzen", guide=False,
                    offers={"decode", "sample_temperature"})

    def __init__(self, arch: str = "mlp", *, x_shape: Sequence[int] = (8, 8), z_dim: int = 16,
                 hidden: Sequence[int] = (128, 256), loss: str = "non-saturating", output: str = "sigmoid",
                 dropout: float = 0.0, spectral_norm: bool = False, ema: float = 0.0, n_fixed: int = 64):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        check_loss(loss)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0 <= ema < 1:
            raise ValueError(f"ema must be in [0, 1) (0: off), got {ema}")
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
        self.arch, self.loss, self.output, self.ema = arch, loss, output, float(ema)
        sn = bool(spectral_norm)
        if arch == "mlp":
            self.generator = MLPGenerator(z_dim, self.x_shape, hidden, output=output)
            self.discriminator = MLPDiscriminator(self.x_shape, hidden, dropout=dropout, spectral_norm=sn)
        else:
            self.generator = ConvGenerator(z_dim, self.x_shape, hidden, output=output)
            self.discriminator = ConvDiscriminator(self.x_shape, hidden, dropout=dropout, spectral_norm=sn)
        # the averaged generator: updated by infer.adversarial.update_ema, never by an optimizer
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if self.ema > 0 else None
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
        """G(z) for codes ``[n × z_dim]`` → ``[n, *x_shape]`` (eval mode: batch norm uses running
        stats; the averaged generator when the GAN keeps one)."""
        g = self.generator if self.generator_ema is None else self.generator_ema
        was = g.training
        g.eval()
        try:
            return g(torch.as_tensor(z, dtype=torch.float32, device=self.device))
        finally:
            g.train(was)

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

    # -- training: the game lives in probgen.infer.adversarial (GAN.fit is Story.fit) ----------
    def begin_fit(self, x: torch.Tensor, y=None, *, method: str, options: dict, val=None, val_y=None) -> None:
        """``fit(x)`` plays 100 epochs unless told otherwise; every other option is
        :func:`probgen.infer.adversarial.fit_adversarial`'s (``batch_size``, ``lr``, ``d_steps``, ...).
        ``y``/``val_y`` are accepted for API symmetry and ignored."""
        if options.get("steps") is None:
            options.setdefault("epochs", 100)

    def end_fit(self, x: torch.Tensor, y=None, *, val=None, val_y=None) -> None:
        """With validation data, choose the Parzen bandwidth on it (:meth:`fit_parzen`)."""
        if val is not None:
            self.fit_parzen(val)

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
        num_samples = check_positive_int("num_samples", num_samples)
        need, budget = num_samples * (self.x_dim + self.z_dim) * 4, memory_budget()  # every center is kept
        if need > budget:
            raise ValueError(f"num_samples must be <= {budget // ((self.x_dim + self.z_dim) * 4)} (Parzen centers "
                             f"held in memory, {budget / 2**30:.2f} GiB at most), got {num_samples}")
        gen = torch.Generator(device=self.device).manual_seed(seed)
        z = torch.randn(num_samples, self.z_dim, device=self.device, generator=gen)
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

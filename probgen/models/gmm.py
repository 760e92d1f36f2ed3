"""The Gaussian mixture model, written as the two-step story it is.

    m ~ Categorical(π)              # pick a component from a multinomial
    x | m ~ N(μ_m, Σ_m)             # then draw x from that component's Gaussian

(with ``likelihood="bernoulli"`` the second step is a product of Bernoullis: a
mixture of Bernoullis). The component m is a discrete ``pyro.sample`` site marked
for enumeration (``config_enumerate``), so Pyro sums it out exactly:
``TraceEnum_ELBO`` trains it by SVI, and the same enumerated trace gives the exact
log-likelihood and the posterior over m.

``fit`` uses EM by default (:func:`probgen.infer.em.fit_em`): its E-step *is* the enumerated
posterior of the Pyro model (:meth:`GMM.joint_log_prob`, no second implementation of the mixture),
and its M-step is the closed-form weighted average (:meth:`GMM.m_step`), both declared pieces of
the story that the trainer calls. ``fit(method="svi")`` runs plain SVI on the same model: slower,
there for the lecture. Replace m by a continuous code and the table μ_m by a
network and you have the VAE (``probgen/models/vae.py``).
"""
from __future__ import annotations

import math
from typing import Sequence

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.infer import config_enumerate, infer_discrete
from torch import nn

from ..data import check_data
from ..nn import check_positive_int
from ..story import Story, Traits

__all__ = ["GMM"]


class GMM(Story):
    """Mixture of ``n_components`` Gaussians (or Bernoulli products) with an enumerated assignment.

    :param n_components: K, the number of components.
    :param likelihood: ``"normal"`` or ``"bernoulli"`` (mixture of Bernoullis for binary data).
    :param covariance: ``"diag"`` or ``"full"`` (normal likelihood only).
    :param reg_covar: added to the variances (the diagonal of Σ), as in scikit-learn.
    :param smoothing: pseudo-count for Bernoulli means, keeps them off 0 and 1.
    :param x_dim: values per example; ``None`` means "set by the first ``fit``".
    :param x_shape: shape of one example for :meth:`sample`.
    """

    kind = "gmm"
    elbo = "enum"
    # EM by default (its pieces: joint_log_prob, initial_responsibilities, m_step), SVI for the lecture
    traits = Traits(trainers=("em", "svi"), estimator="exact", guide=False,
                    offers={"responsibilities", "sample_mean"})

    def __init__(self, n_components: int = 10, *, likelihood: str = "normal", covariance: str = "diag",
                 reg_covar: float = 1e-6, smoothing: float = 1e-2, x_dim: int | None = None,
                 x_shape: Sequence[int] | None = None):
        super().__init__()
        self.n_components = check_positive_int("n_components", n_components)
        if likelihood not in ("normal", "bernoulli"):
            raise ValueError(f"likelihood must be 'normal' or 'bernoulli', got {likelihood!r}")
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        if not reg_covar >= 0 or not smoothing >= 0:
            raise ValueError(f"reg_covar and smoothing must be >= 0, got {reg_covar}, {smoothing}")
        self.likelihood, self.covariance = likelihood, covariance
        self.reg_covar, self.smoothing = float(reg_covar), float(smoothing)
        self.x_shape = tuple(x_shape) if x_shape is not None else None
        self.x_dim = None
        # the model with its discrete site marked for parallel enumeration
        self.model = config_enumerate(self._story, default="parallel")
        if x_dim is not None:
            self._build(check_positive_int("x_dim", x_dim))

    def _build(self, x_dim: int) -> None:
        K = self.n_components
        self.x_dim = x_dim
        self._probgen_config["x_dim"] = x_dim
        if self.x_shape is None:
            self.x_shape = (x_dim,)
            self._probgen_config["x_shape"] = [x_dim]
        # unconstrained parameters, so that SVI can move them freely
        self.logits = nn.Parameter(torch.zeros(K))  # K
        if self.likelihood == "bernoulli":
            self.x_logits = nn.Parameter(torch.zeros(K, x_dim))  # K × D
            return
        self.means = nn.Parameter(torch.zeros(K, x_dim))  # K × D
        if self.covariance == "diag":
            self.log_scales = nn.Parameter(torch.zeros(K, x_dim))  # K × D
        else:
            self.tril_raw = nn.Parameter(torch.zeros(K, x_dim, x_dim))  # K × D × D

    # -- constrained views ---------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        """Mixture weights π, ``[K]``."""
        return torch.softmax(self.logits, -1)

    @property
    def scale_tril(self) -> torch.Tensor:
        """Cholesky factors of Σ_m, ``[K × D × D]`` (full covariance)."""
        raw = self.tril_raw
        return torch.tril(raw, -1) + torch.diag_embed(torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)))

    def _component(self, m: torch.Tensor) -> dist.TorchDistribution:
        """The distribution of x given component index ``m`` (any shape)."""
        return _Component(self, m)

    def _component_dist(self, m: torch.Tensor) -> dist.TorchDistribution:
        """x | m as a plain Pyro distribution (used to draw samples)."""
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=self.x_logits[m]).to_event(1)
        if self.covariance == "diag":
            return dist.Normal(self.means[m], self.log_scales[m].exp()).to_event(1)
        return dist.MultivariateNormal(self.means[m], scale_tril=self.scale_tril[m])

    def component_table(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_i | m = k) for all components at once, ``[n × K]``, by matrix products
        (the K × n × D broadcast of the textbook formula is what made EM slow)."""
        if self.likelihood == "bernoulli":
            logits = self.x_logits  # K × D
            return x @ logits.T - torch.nn.functional.softplus(logits).sum(-1)
        if self.covariance == "diag":
            # one GEMM: [x², x] @ [-½ prec, μ prec]ᵀ + const; [x², x] is computed once per data tensor
            prec = torch.exp(-2 * self.log_scales)  # K × D
            weights = torch.cat([-0.5 * prec, self.means * prec], 1)  # K × 2D
            const = (-0.5 * (self.means**2 * prec).sum(-1) - self.log_scales.sum(-1)
                     - 0.5 * x.shape[-1] * math.log(2 * math.pi))  # K
            # computed as K × n (a wide GEMM output is faster than a skinny one), returned as its n × K view
            return torch.addmm(const[:, None], weights, self._squares(x).T).T
        # full: ||L_k^{-1} (x - μ_k)||² through the precision Cholesky P_k = L_k^{-T} (upper
        # triangular), one batched matrix product, as scikit-learn does
        raw = self.tril_raw  # K × D × D, log-diagonal
        L = self.scale_tril
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        P = torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False).transpose(-1, -2)  # K × D × D
        K, D = P.shape[:2]
        # one GEMM for all components: x @ [P_1 ... P_K] - [μ_1 P_1 ... μ_K P_K] -> n × K × D
        mP = (self.means[:, None, :] @ P).reshape(1, K * D)
        y = torch.addmm(-mP, x, P.transpose(0, 1).reshape(D, K * D)).reshape(len(x), K, D)
        log_det = torch.diagonal(raw, dim1=-2, dim2=-1).sum(-1)  # K: log |L_k|
        quad = torch.einsum("nkd,nkd->nk", y, y)  # n × K (a fused reduction: y.pow(2).sum(-1) is 15× slower)
        return -0.5 * quad - log_det - 0.5 * x.shape[-1] * math.log(2 * math.pi)

    def _squares(self, x: torch.Tensor) -> torch.Tensor:
        """``[x², x]``, ``[n × 2D]``, computed once per data tensor (see :meth:`_per_data`)."""
        return self._per_data(x, "squares", lambda: torch.cat([x * x, x], 1))

    def _per_data(self, x: torch.Tensor, name: str, make):
        """``make()``, cached for the data tensor EM visits every iteration (the cache keeps ``x``
        alive, so its key -- storage, shape, strides, in-place version -- is unique; ``fit`` drops it)."""
        key = (x.data_ptr(), x.shape, x.stride(), x._version, x.dtype, x.device)
        cached = self.__dict__.get("_data_cache")
        if cached is None or cached[1] != key:
            if x.requires_grad:
                return make()
            cached = self.__dict__["_data_cache"] = (x, key, {})
        if name not in cached[2]:
            cached[2][name] = make()
        return cached[2][name]

    # -- the story ---------------------------------------------------------------
    def _story(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """m ~ Categorical(π); x ~ component m."""
        self.register_params()
        n = x.shape[0] if x is not None else n
        x = x.reshape(n, -1) if x is not None else None  # batch × D
        with pyro.plate("data", n):
            m = pyro.sample("m", _Assignment(self))  # Categorical(π): batch (or K × 1 enumerated)
            pyro.sample("x", self._component(m), obs=x)

    def guide(self, x=None, y=None, n=None):
        """Nothing to guide: m is summed out by enumeration."""
        self.register_params()

    def prepare(self, x, y=None):
        """``x`` validated, in the parameters' dtype, one row of D values per example ``[n, D]``."""
        x = self._checked(x)
        return x.reshape(len(x), -1), y

    def _checked(self, x) -> torch.Tensor:
        """``x`` validated once (``check_data``) in the parameters' dtype (float32 while unbuilt)."""
        checked = check_data(x, x_dim=self.x_dim, binary=self.likelihood == "bernoulli")  # float32
        if self.likelihood == "bernoulli" and not ((checked == 0) | (checked == 1)).all():
            raise ValueError("x: a Bernoulli mixture needs binary data (0/1); pass --binarize")
        if self.x_dim is None:
            return checked
        # a float64 GMM scores in float64, from the caller's values (not their float32 copy)
        src = x if isinstance(x, torch.Tensor) and x.is_floating_point() else checked
        return src.to(self.logits.dtype)

    # -- exact inference by enumeration -------------------------------------------
    def joint_log_prob(self, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """log p(x_i, m = k) for every component, from the enumerated Pyro trace: ``[K × n]``.

        The trace of each chunk is recorded once per data tensor and re-scored on every call
        (Pyro's ``compute_log_prob``): its site distributions read the current parameters when
        scored, so EM's iterations reuse one trace instead of re-running the model (~0.4 ms each)."""
        out = []
        for tr in self._per_data(x, f"traces{chunk}", lambda: self._enumerated_traces(x, chunk)):
            for site in (tr.nodes["m"], tr.nodes["x"]):
                site.pop("log_prob", None)  # stale: the parameters moved since the last call
            tr.compute_log_prob()
            out.append(tr.nodes["m"]["log_prob"] + tr.nodes["x"]["log_prob"])  # K × chunk
        return out[0] if len(out) == 1 else torch.cat(out, dim=1)

    def _enumerated_traces(self, x: torch.Tensor, chunk: int) -> list:
        """One Pyro trace of the model with ``m`` enumerated (K × 1) per chunk of ``x``."""
        enumerated = poutine.enum(self.model, first_available_dim=-2)
        return [poutine.trace(enumerated).get_trace(x[start:start + chunk]) for start in range(0, len(x), chunk)]

    def log_prob(self, x, y=None, *, num_samples: int | None = None) -> torch.Tensor:
        """Exact log p(x) = log Σ_m π_m p(x | m), per example, in nats."""
        x, _ = self.prepare(x)
        self._require_built()
        with torch.no_grad():
            return torch.logsumexp(self.joint_log_prob(x.reshape(len(x), -1)), dim=0)

    def responsibilities(self, x) -> torch.Tensor:
        """Posterior p(m | x_i) of the enumerated site: ``[n × K]``."""
        x, _ = self.prepare(x)
        self._require_built()
        with torch.no_grad():
            return torch.softmax(self.joint_log_prob(x.reshape(len(x), -1)), dim=0).T

    def assign(self, x) -> torch.Tensor:
        """MAP component of each example via ``infer_discrete`` (temperature 0): ``[n]``."""
        x, _ = self.prepare(x)
        self._require_built()
        with torch.no_grad():
            decoded = infer_discrete(self.model, first_available_dim=-2, temperature=0)
            return poutine.trace(decoded).get_trace(x.reshape(len(x), -1)).nodes["m"]["value"]

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = False, return_components: bool = False):
        """Run the story forwards: m from the multinomial, then x from component m.

        :param mean: return the component mean instead of a draw.
        :param return_components: also return the drawn m, ``[n]``.
        """
        n = check_positive_int("n", n)
        self._require_built()
        tr = poutine.trace(self.model).get_trace(None, None, n)
        m, x = tr.nodes["m"]["value"], tr.nodes["x"]["value"]
        if mean:
            x = torch.sigmoid(self.x_logits[m]) if self.likelihood == "bernoulli" else self.means[m]
        x = x.reshape(n, *self.x_shape)
        return (x, m) if return_components else x

    def _require_built(self):
        if self.x_dim is None:
            raise ValueError("GMM has no parameters yet: call fit(x) first")

    def load_state_dict(self, state_dict, strict: bool = True):
        if self.x_dim is None and "logits" in state_dict:
            key = "x_logits" if self.likelihood == "bernoulli" else "means"
            self._build(state_dict[key].shape[-1])
        return super().load_state_dict(state_dict, strict=strict)

    # -- fitting: the pieces the trainers call (probgen.infer.em, probgen.infer.svi) --------------
    def begin_fit(self, x: torch.Tensor, y=None, *, method: str, options: dict, val=None, val_y=None) -> None:
        """Size an unbuilt mixture from the data and refuse more components than examples. For
        ``method="svi"`` take ``seed`` and ``init`` out of ``options`` and start from them (EM's
        own start: :func:`probgen.infer.em.fit_em` reads ``max_iter``, ``tol``, ``seed``, ``init``)."""
        if self.x_dim is None:
            self._build(x.shape[1])
        if len(x) < self.n_components:
            raise ValueError(f"n_components={self.n_components} is larger than the data ({len(x)} examples)")
        if method == "svi":
            seed, init = options.pop("seed", 0), options.pop("init", "kmeans")
            with torch.no_grad():
                self.m_step(x, self.initial_responsibilities(x, init=init, seed=seed))

    def end_fit(self, x: torch.Tensor, y=None, *, val=None, val_y=None) -> None:
        """Drop EM's per-data cache (the trace and ``[x², x]``: not kept alive after the fit) and keep
        ``fit_seconds`` (and, after EM, ``em_history`` and ``converged``) from ``train_result``."""
        self.__dict__.pop("_data_cache", None)
        result = self.train_result
        if result.converged is not None:  # EM's result says whether it met its tolerance; SVI's does not
            self.em_history = [r["log_likelihood"] for r in result.history]
            self.converged = result.converged
        self.fit_seconds = result.seconds

    def initial_responsibilities(self, x: torch.Tensor, *, init: str = "kmeans", seed: int = 0) -> torch.Tensor:
        """Where EM (or SVI) starts: responsibilities ``[K × n]`` of prepared data ``x [n, D]``.

        :param init: ``"kmeans"`` (one-hot k-means clusters, as scikit-learn) or ``"random"``
            (random responsibilities).
        :param seed: seed of k-means or of the random draw.
        """
        K, n = self.n_components, len(x)
        if init == "kmeans":
            from sklearn.cluster import KMeans

            labels = KMeans(K, n_init=1, random_state=seed).fit(x.cpu().numpy()).labels_
            resp = torch.zeros(K, n, dtype=x.dtype)
            resp[torch.as_tensor(labels, dtype=torch.long), torch.arange(n)] = 1.0
        elif init == "random":
            g = torch.Generator().manual_seed(seed)
            resp = torch.rand(K, n, generator=g, dtype=x.dtype)
            resp /= resp.sum(0, keepdim=True)
        else:
            raise ValueError(f"init must be 'kmeans' or 'random', got {init!r}")
        return resp.to(x.device)

    def m_step(self, x: torch.Tensor, resp: torch.Tensor) -> None:
        """The M-step: closed-form weighted maximum likelihood of prepared data ``x [n, D]`` given
        responsibilities ``resp [K × n]`` (call it under ``torch.no_grad()``)."""
        nk = resp.sum(1) + 10 * torch.finfo(x.dtype).eps  # K
        self.logits.data = torch.log(nk / nk.sum())
        if self.likelihood == "bernoulli":
            a = self.smoothing
            p = (resp @ x + a) / (nk[:, None] + 2 * a)
            p = p.clamp(1e-7, 1 - 1e-7)
            self.x_logits.data = torch.log(p) - torch.log1p(-p)
            return
        if self.covariance == "diag":  # both moments in one GEMM over the cached [x², x]
            second, means = ((resp @ self._squares(x)) / nk[:, None]).chunk(2, dim=1)  # K × D each
            self.means.data = means.contiguous()
            var = second - means**2 + self.reg_covar
            self.log_scales.data = 0.5 * torch.log(var.clamp_min(self.reg_covar or 1e-12))
        else:
            means = (resp @ x) / nk[:, None]  # K × D
            self.means.data = means
            # one component at a time (as scikit-learn): a K × n × D buffer would not fit for large K;
            # on the cached D × n transpose, so both GEMM operands are contiguous (22 % faster than n × D)
            xt = self._per_data(x, "transposed", lambda: x.T.contiguous())  # D × n
            cov = torch.empty(len(means), x.shape[1], x.shape[1], dtype=x.dtype, device=x.device)  # K × D × D
            for k in range(len(means)):
                diff_t = xt - means[k][:, None]  # D × n
                torch.mm(diff_t * resp[k], diff_t.T, out=cov[k])
            cov = cov / nk[:, None, None] + self.reg_covar * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
            L = torch.linalg.cholesky(cov)
            self.tril_raw.data = torch.tril(L, -1) + torch.diag_embed(torch.log(torch.diagonal(L, dim1=-2, dim2=-1)))


class _Component(dist.TorchDistribution):
    """x | m for a (possibly enumerated) index tensor ``m``.

    Sampling defers to the plain distribution of :meth:`GMM._component_dist`. The
    log-density looks up :meth:`GMM.component_table`, computed once for all K
    components with matrix products, so enumerating m costs one ``n × D × K`` product
    instead of a ``K × n × D`` elementwise broadcast.
    """

    arg_constraints: dict = {}

    def __init__(self, gmm: GMM, m: torch.Tensor, validate_args=None):
        self.gmm, self.m = gmm, m
        super().__init__(m.shape, torch.Size([gmm.x_dim]), validate_args=False)

    @property
    def support(self):
        return dist.constraints.independent(
            dist.constraints.boolean if self.gmm.likelihood == "bernoulli" else dist.constraints.real, 1)

    def expand(self, batch_shape, _instance=None):
        return _Component(self.gmm, self.m.expand(batch_shape))

    def sample(self, sample_shape=torch.Size()):
        return self.gmm._component_dist(self.m).sample(sample_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        table = self.gmm.component_table(x)  # n × K
        m = self.m
        K = table.shape[-1]
        # m enumerated (K × 1, or its K × n expansion by the plate: every component): the table itself, no gather
        if (m.dim() == 2 and x.dim() == 2 and m.shape[0] == K and (m.shape[1] == 1 or m.stride(1) == 0)
                and bool((m[:, 0] == torch.arange(K, device=m.device)).all())):
            # (K × n in memory as the gather made it, so EM's sums round as before; free for diag's K × n table)
            return table.T.contiguous().expand(K, max(m.shape[1], table.shape[0]))
        shape = _broadcast(m.shape, table.shape[:-1])
        return torch.gather(table.expand(*shape, table.shape[-1]), -1, m.expand(shape).unsqueeze(-1)).squeeze(-1)


class _Assignment(dist.TorchDistribution):
    """m ~ Categorical(π), π = softmax(``gmm.logits``) read when scored or drawn (not when built),
    so a recorded trace stays valid while EM moves the parameters. Enumerable like Categorical."""

    arg_constraints: dict = {}
    has_enumerate_support = True

    def __init__(self, gmm: GMM, batch_shape=torch.Size(), validate_args=None):
        self.gmm = gmm
        super().__init__(torch.Size(batch_shape), torch.Size(), validate_args=False)

    @property
    def support(self):
        return dist.constraints.integer_interval(0, self.gmm.n_components - 1)

    def expand(self, batch_shape, _instance=None):
        return _Assignment(self.gmm, batch_shape)

    def sample(self, sample_shape=torch.Size()):
        return dist.Categorical(logits=self.gmm.logits).expand(self.batch_shape).sample(sample_shape)

    def log_prob(self, m: torch.Tensor) -> torch.Tensor:
        logits = self.gmm.logits
        log_pi = logits - logits.logsumexp(-1, keepdim=True)  # K, rounded as torch's Categorical does
        return log_pi[m].expand(_broadcast(m.shape, self.batch_shape))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        values = torch.arange(self.gmm.n_components, device=self.gmm.logits.device)
        values = values.reshape((-1,) + (1,) * len(self.batch_shape))  # K × 1 ...
        return values.expand((-1,) + tuple(self.batch_shape)) if expand else values


def _broadcast(a: Sequence[int], b: Sequence[int]) -> torch.Size:
    """The broadcast of two shapes (``torch.broadcast_shapes`` costs ~20 µs per call)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    return torch.Size(j if i == 1 else i for i, j in zip(a, b))

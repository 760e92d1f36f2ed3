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

Gaussians compute in float64 (as scikit-learn: with ``reg_covar=1e-6`` the digits' constant pixels make
variances span six orders of magnitude; float32 ended up to 4.5 nats worse held out). ``fit(n_init=B)`` runs
B EM starts at once, a ``fits`` plate of B mixtures in the same story (a GPU's batch), and keeps the best.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Sequence

import numpy as np
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
    :param dtype: ``"float64"`` or ``"float32"`` parameters; default float64 for the normal likelihood
        (as scikit-learn: float32 loses the small variances), float32 for the Bernoulli mixture.
    """

    kind = "gmm"
    elbo = "enum"
    # EM by default (its pieces: joint_log_prob, initial_responsibilities, m_step), SVI for the lecture
    traits = Traits(trainers=("em", "svi"), estimator="exact", guide=False,
                    offers={"responsibilities", "sample_mean"})

    def __init__(self, n_components: int = 10, *, likelihood: str = "normal", covariance: str = "diag",
                 reg_covar: float = 1e-6, smoothing: float = 1e-2, x_dim: int | None = None,
                 x_shape: Sequence[int] | None = None, dtype: str | None = None):
        super().__init__()
        self.n_components = check_positive_int("n_components", n_components)
        if likelihood not in ("normal", "bernoulli"):
            raise ValueError(f"likelihood must be 'normal' or 'bernoulli', got {likelihood!r}")
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        if not reg_covar >= 0 or not smoothing >= 0:
            raise ValueError(f"reg_covar and smoothing must be >= 0, got {reg_covar}, {smoothing}")
        if dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self._param_dtype = getattr(torch, dtype or ("float64" if likelihood == "normal" else "float32"))
        self.likelihood, self.covariance = likelihood, covariance
        self.reg_covar, self.smoothing = float(reg_covar), float(smoothing)
        self.x_shape = tuple(x_shape) if x_shape is not None else None
        self.x_dim = None
        # the model with its discrete site marked for parallel enumeration
        self.model = config_enumerate(self._story, default="parallel")
        if x_dim is not None:
            self._build(check_positive_int("x_dim", x_dim))

    def _build(self, x_dim: int, device: torch.device | None = None) -> None:
        K, dt = self.n_components, {"dtype": self._param_dtype, "device": device}
        self.x_dim = x_dim
        self._probgen_config["x_dim"] = x_dim
        if self.x_shape is None:
            self.x_shape = (x_dim,)
            self._probgen_config["x_shape"] = [x_dim]
        # unconstrained parameters, so that SVI can move them freely (a leading B while EM runs B starts)
        self.logits = nn.Parameter(torch.zeros(K, **dt))  # K
        if self.likelihood == "bernoulli":
            self.x_logits = nn.Parameter(torch.zeros(K, x_dim, **dt))  # K × D
            return
        self.means = nn.Parameter(torch.zeros(K, x_dim, **dt))  # K × D
        if self.covariance == "diag":
            self.log_scales = nn.Parameter(torch.zeros(K, x_dim, **dt))  # K × D
        else:
            self.tril_raw = nn.Parameter(torch.zeros(K, x_dim, x_dim, **dt))  # K × D × D

    # -- constrained views ---------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        """Mixture weights π, ``[K]``."""
        return torch.softmax(self.logits, -1)

    @property
    def device(self) -> torch.device:
        """The parameters' device; while unbuilt, that of the data last prepared (the first ``fit`` builds
        the parameters there: ``GMM(K).fit(x_on_gpu)`` fits on the GPU)."""
        return self.logits.device if self.x_dim is not None else self.__dict__.get("_data_device", torch.device("cpu"))

    @property
    def n_fits(self) -> int:
        """Mixtures held at once: 1, or B while ``fit(n_init=B)`` runs B EM starts as a batch."""
        return self.logits.shape[0] if self.logits.dim() == 2 else 1

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
        """log p(x_i | m = k) for all components at once, ``[n × K]`` (``[B × n × K]`` while EM runs B
        starts), by matrix products (the K × n × D broadcast of the textbook formula made EM slow)."""
        return self._enumerated_table(x).movedim(0, -1)

    def _enumerated_table(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`component_table` laid out as the enumerated trace wants it: ``[K × n]`` (``[K × B × n]``),
        contiguous. The B starts' parameters are flattened into one GEMM of K·B rows."""
        K, D, n = self.n_components, x.shape[-1], len(x)
        batch = (self.n_fits,) if self.logits.dim() == 2 else ()

        def rows(t: torch.Tensor, tail: int) -> torch.Tensor:  # (B) × K × tail... -> K·B × tail...
            return t.movedim(len(batch), 0).reshape(-1, *t.shape[t.dim() - tail:])

        if self.likelihood == "bernoulli":
            logits = rows(self.x_logits, 1)  # KB × D
            table = x @ logits.T - torch.nn.functional.softplus(logits).sum(-1)  # n × KB
            return table.T.contiguous().view(K, *batch, n)
        if self.covariance == "diag":
            # one GEMM, KB × n (wider output: faster): [-½ prec, μ prec] @ [x², x]ᵀ + const ([x², x] cached)
            log_scales, means = rows(self.log_scales, 1), rows(self.means, 1)  # KB × D
            prec = torch.exp(-2 * log_scales)
            weights = torch.cat([-0.5 * prec, means * prec], 1)  # KB × 2D
            const = (-0.5 * (means**2 * prec).sum(-1) - log_scales.sum(-1) - 0.5 * D * math.log(2 * math.pi))
            return torch.addmm(const[:, None], weights, self._squares(x).T).view(K, *batch, n)
        # full: ||L_k^{-1} (x - μ_k)||² through the precision Cholesky P_k = L_k^{-T}, as scikit-learn does
        raw, L, means = rows(self.tril_raw, 2), rows(self.scale_tril, 2), rows(self.means, 1)  # KB × D × D, KB × D
        eye = torch.eye(D, dtype=x.dtype, device=x.device)
        P = torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False).transpose(-1, -2)  # KB × D × D
        # one GEMM for all components: x @ [P_1 ... P_KB] - [μ_1 P_1 ... μ_KB P_KB] -> n × KB × D
        mP = (means[:, None, :] @ P).reshape(1, -1)
        y = torch.addmm(-mP, x, P.transpose(0, 1).reshape(D, -1)).reshape(n, -1, D)
        log_det = torch.diagonal(raw, dim1=-2, dim2=-1).sum(-1)  # KB: log |L_k|
        quad = torch.einsum("nkd,nkd->nk", y, y)  # n × KB (a fused reduction: y.pow(2).sum(-1) is 15× slower)
        table = -0.5 * quad - log_det - 0.5 * D * math.log(2 * math.pi)
        return table.T.contiguous().view(K, *batch, n)

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
        B, device = self.n_fits, self.logits.device  # B > 1 only while EM runs B starts: B mixtures of the data
        with pyro.plate("data", n, device=device), \
                (pyro.plate("fits", B, dim=-2, device=device) if B > 1 else contextlib.nullcontext()):
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
        """``x`` validated once (``check_data``) in the parameters' dtype (the one they will have while unbuilt)."""
        checked = check_data(x, x_dim=self.x_dim, binary=self.likelihood == "bernoulli")  # float32
        if self.likelihood == "bernoulli" and not ((checked == 0) | (checked == 1)).all():
            raise ValueError("x: a Bernoulli mixture needs binary data (0/1); pass --binarize")
        # a float64 GMM scores in float64, from the caller's values (not their float32 copy)
        if self.x_dim is None:
            self.__dict__["_data_device"] = checked.device  # where the first fit will build the parameters
        dtype = self._param_dtype if self.x_dim is None else self.logits.dtype
        if isinstance(x, torch.Tensor) and x.is_floating_point() or isinstance(x, np.ndarray) and x.dtype.kind == "f":
            return torch.as_tensor(x, device=checked.device).to(dtype)
        return checked.to(dtype)

    # -- exact inference by enumeration -------------------------------------------
    def joint_log_prob(self, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """log p(x_i, m = k) for every component, from the enumerated Pyro trace: ``[K × n]``
        (``[K × B × n]`` while EM runs B starts).

        The trace of each chunk is recorded once per data tensor and re-scored on every call
        (Pyro's ``compute_log_prob``): its site distributions read the current parameters when
        scored, so EM's iterations reuse one trace instead of re-running the model (~0.4 ms each)."""
        B, out = self.n_fits, []
        if self.likelihood == "normal" and self.covariance == "full":  # its table needs chunk × K·B × D numbers
            chunk = min(chunk, max(64, 2**24 // (self.n_components * B * x.shape[-1])))
        name = f"traces{chunk}" + (f"x{B}" if B > 1 else "")  # B starts: the trace has the fits plate
        for tr in self._per_data(x, name, lambda: self._enumerated_traces(x, chunk)):
            for site in (tr.nodes["m"], tr.nodes["x"]):
                site.pop("log_prob", None)  # stale: the parameters moved since the last call
            tr.compute_log_prob()
            out.append(tr.nodes["m"]["log_prob"] + tr.nodes["x"]["log_prob"])  # K × chunk (K × B × chunk)
        return out[0] if len(out) == 1 else torch.cat(out, dim=-1)

    def _enumerated_traces(self, x: torch.Tensor, chunk: int) -> list:
        """One Pyro trace of the model with ``m`` enumerated (K × 1, K × 1 × 1 with B starts) per chunk."""
        enumerated = poutine.enum(self.model, first_available_dim=-2 if self.n_fits == 1 else -3)
        return [poutine.trace(enumerated).get_trace(x[start:start + chunk]) for start in range(0, len(x), chunk)]

    def log_prob(self, x, y=None, *, num_samples: int | None = None) -> torch.Tensor:
        """Exact log p(x) = log Σ_m π_m p(x | m), per example, in nats (in ``x``'s float dtype)."""
        out, x = _answer_dtype(x), self.prepare(x)[0]
        self._require_built()
        with torch.no_grad():
            return torch.logsumexp(self.joint_log_prob(x.reshape(len(x), -1)), dim=0).to(out)

    def responsibilities(self, x) -> torch.Tensor:
        """Posterior p(m | x_i) of the enumerated site: ``[n × K]`` (in ``x``'s float dtype)."""
        out, x = _answer_dtype(x), self.prepare(x)[0]
        self._require_built()
        with torch.no_grad():
            return torch.softmax(self.joint_log_prob(x.reshape(len(x), -1)), dim=0).T.to(out)

    def assign(self, x) -> torch.Tensor:
        """MAP component of each example via ``infer_discrete`` (temperature 0): ``[n]``."""
        x, _ = self.prepare(x)
        self._require_built()
        with torch.no_grad():
            decoded = infer_discrete(self.model, first_available_dim=-2, temperature=0)
            return poutine.trace(decoded).get_trace(x.reshape(len(x), -1)).nodes["m"]["value"]

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = False, return_components: bool = False):
        """Run the story forwards: m from the multinomial, then x from component m (in torch's
        default dtype, whatever the parameters': images for networks and plots).

        :param mean: return the component mean instead of a draw.
        :param return_components: also return the drawn m, ``[n]``.
        """
        n = check_positive_int("n", n)
        self._require_built()
        tr = poutine.trace(self.model).get_trace(None, None, n)
        m, x = tr.nodes["m"]["value"], tr.nodes["x"]["value"]
        if mean:
            x = torch.sigmoid(self.x_logits[m]) if self.likelihood == "bernoulli" else self.means[m]
        x = x.reshape(n, *self.x_shape).to(torch.get_default_dtype())
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
        own start: :func:`probgen.infer.em.fit_em` reads ``max_iter``, ``tol``, ``seed``, ``init``, ``n_init``)."""
        if self.x_dim is None:
            self._build(x.shape[1], device=x.device)
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

    def initial_responsibilities(self, x: torch.Tensor, *, init: str = "kmeans", seed: int = 0,
                                 n_init: int = 1) -> torch.Tensor:
        """Where EM (or SVI) starts: responsibilities ``[K × n]`` of prepared data ``x [n, D]``
        (``[K × B × n]`` for ``n_init=B`` starts).

        :param init: ``"kmeans"`` (one-hot k-means clusters, as scikit-learn) or
            ``"random"`` (random responsibilities).
        :param seed: seed of k-means or of the random draw; B starts draw one after another from it
            (scikit-learn's ``n_init``: start 0 is the ``n_init=1`` start).
        :param n_init: number of starts.
        """
        K, n = self.n_components, len(x)
        if init == "kmeans":
            from sklearn.cluster import KMeans

            rng = np.random.RandomState(seed)  # one stream for all starts, as scikit-learn
            values = x.detach().cpu().numpy()  # the model's dtype: float64 for Gaussians, as scikit-learn
            # one BLAS thread (same labels, faster here): woken, OpenBLAS's threads spin ~0.1 s after their
            # last call and halve the speed of torch's two threads in the EM that follows
            with _blas_threads().limit(limits=1, user_api="blas"):
                labels = np.stack([KMeans(K, n_init=1, random_state=rng).fit(values).labels_ for _ in range(n_init)])
            labels = torch.as_tensor(labels, dtype=torch.long, device=x.device)  # B × n
            resp = torch.nn.functional.one_hot(labels, K).to(x.dtype).permute(2, 0, 1)  # K × B × n
        elif init == "random":
            g = torch.Generator().manual_seed(seed)
            resp = torch.rand(n_init, K, n, generator=g, dtype=x.dtype).transpose(0, 1).to(x.device)  # K × B × n
            resp /= resp.sum(0, keepdim=True)
        else:
            raise ValueError(f"init must be 'kmeans' or 'random', got {init!r}")
        return resp[:, 0].contiguous() if n_init == 1 else resp.contiguous()

    def m_step(self, x: torch.Tensor, resp: torch.Tensor) -> None:
        """The M-step: closed-form weighted maximum likelihood of prepared data ``x [n, D]`` given
        responsibilities ``resp [K × n]`` (call it under ``torch.no_grad()``). ``resp [K × B × n]``
        fits B mixtures at once (parameters ``[B × K × ...]``; ``[K × n]`` makes one again)."""
        D = x.shape[1]
        r = resp.movedim(0, -2)  # (B ×) K × n
        nk = r.sum(-1) + 10 * torch.finfo(x.dtype).eps  # (B ×) K
        self.logits.data = torch.log(nk / nk.sum(-1, keepdim=True))
        if self.likelihood == "bernoulli":
            a = self.smoothing
            p = (r @ x + a) / (nk[..., None] + 2 * a)
            p = p.clamp(1e-7, 1 - 1e-7)
            self.x_logits.data = torch.log(p) - torch.log1p(-p)
            return
        if self.covariance == "diag":  # both moments in one GEMM over the cached [x², x]
            second, means = ((r @ self._squares(x)) / nk[..., None]).chunk(2, dim=-1)  # (B ×) K × D each
            self.means.data = means.contiguous()
            var = second - means**2 + self.reg_covar
            self.log_scales.data = 0.5 * torch.log(var.clamp_min(self.reg_covar or 1e-12))
            return
        means = (r @ x) / nk[..., None]  # (B ×) K × D
        self.means.data = means
        # the scatter of each component about its mean on the cached D × n transpose, so both GEMM operands
        # are contiguous (22 % faster than n × D); one component at a time on the CPU (as scikit-learn: a
        # batched bmm was 2× slower), in chunks of ~2**25 numbers elsewhere (a GPU wants few large launches)
        xt = self._per_data(x, "transposed", lambda: x.T.contiguous())  # D × n
        flat_means, flat_r = means.reshape(-1, D), r.reshape(-1, len(x))  # KB × D, KB × n
        cov = torch.empty(len(flat_means), D, D, dtype=x.dtype, device=x.device)  # KB × D × D
        step = 1 if x.device.type == "cpu" else max(1, 2**25 // (D * len(x)))
        for k in range(0, len(flat_means), step):
            if step == 1:
                diff_t = xt - flat_means[k][:, None]  # D × n
                torch.mm(diff_t * flat_r[k], diff_t.T, out=cov[k])
            else:
                diff_t = xt - flat_means[k:k + step, :, None]  # c × D × n
                torch.bmm(diff_t * flat_r[k:k + step, None, :], diff_t.transpose(1, 2), out=cov[k:k + step])
        eye = torch.eye(D, dtype=x.dtype, device=x.device)
        cov = cov.view(*means.shape, D) / nk[..., None, None] + self.reg_covar * eye
        L, info = torch.linalg.cholesky_ex(cov)
        if bool(info.any()):
            raise ValueError("a component's covariance is not positive definite (too few points in it): "
                             f"raise reg_covar (now {self.reg_covar:g}) or lower n_components")
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
        m, K = self.m, self.gmm.n_components
        # m enumerated (K × 1, or its K × n expansion by the plate; K × 1 × 1 or K × B × n with B starts):
        # every component, so the table itself, no gather (K × n in memory as the gather made it, so EM's
        # sums round as before; free for diag's K × n table). Checked once: EM re-scores this same instance.
        if "_enumerated" not in self.__dict__:
            self._enumerated = (
                m.dim() == 1 + self.gmm.logits.dim() and m.shape[0] == K
                and all(size == 1 or stride == 0 for size, stride in zip(m.shape[1:], m.stride()[1:]))
                and bool((m[(slice(None),) + (0,) * (m.dim() - 1)] == torch.arange(K, device=m.device)).all()))
        if self._enumerated and x.dim() == 2:
            return self.gmm._enumerated_table(x)  # K × n (K × B × n)
        table = self.gmm.component_table(x)  # n × K (B × n × K)
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
        log_pi = logits - logits.logsumexp(-1, keepdim=True)  # K (B × K), rounded as torch's Categorical does
        shape = _broadcast(m.shape, self.batch_shape)
        if logits.dim() == 1:
            return log_pi[m].expand(shape)
        # B starts: m [..., B, n] picks from row b of log π
        return torch.gather(log_pi[:, None, :].expand(*shape, logits.shape[-1]), -1,
                            m.expand(shape).unsqueeze(-1)).squeeze(-1)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        values = torch.arange(self.gmm.n_components, device=self.gmm.logits.device)
        values = values.reshape((-1,) + (1,) * len(self.batch_shape))  # K × 1 ...
        return values.expand((-1,) + tuple(self.batch_shape)) if expand else values


@functools.lru_cache(maxsize=1)
def _blas_threads():
    """threadpoolctl's controller (a scikit-learn dependency), made once: it scans the loaded libraries."""
    return __import__("threadpoolctl").ThreadpoolController()


def _answer_dtype(x) -> torch.dtype:
    """The caller's float dtype (a float64 GMM answers float32 data in float32), else torch's default."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.dtype
    return torch.float64 if isinstance(x, np.ndarray) and x.dtype == np.float64 else torch.get_default_dtype()


def _broadcast(a: Sequence[int], b: Sequence[int]) -> torch.Size:
    """The broadcast of two shapes (``torch.broadcast_shapes`` costs ~20 µs per call)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    return torch.Size(j if i == 1 else i for i, j in zip(a, b))

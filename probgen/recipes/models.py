"""The trainable families: one config dataclass each (every default written once, here), and
the registry ``MODELS`` that ``train`` / ``compare`` / the tour (and ``probgen train NAME``) read.

How to add a family::

    @dataclass
    class MyConfig(FitConfig):          # FitConfig: epochs, batch_size, lr, patience, resume, ...
        epochs: int = opt(40, "passes over the data")   # override a default
        width: int = opt(64, "hidden width")            # the model's own options (help for --width)

    def _build_mine(cfg: MyConfig, ds):                 # construct the (untrained) model
        return MyModel(ds.x_dim, width=cfg.width)

    register_model("mine", MyConfig, _build_mine, tour="gmm-to-vae", help="one line for probgen train --help")

That is all ``probgen train mine``, ``probgen compare --models ...,mine`` and the tour need: every family is
fitted by :func:`fit_model` (the story's declared trainer, labels when its ``traits.labels`` say so, the final
file written once by the trainer). A config maps its own fields to the trainer's options by overriding
:meth:`~probgen.recipes.config.FitBase.fit_options` (the GMM: ``method``, ``max_iter``), may warm-start the
model (:meth:`~probgen.recipes.config.FitBase.warm_start`) and adds numbers measured on the trained model to
its checkpoint (:meth:`~probgen.recipes.config.FitBase.metrics`). ``fit=`` replaces :func:`fit_model` for a
family that writes more than its checkpoint (the GAN's curves, the sentence VAE's report); ``load=`` /
``data_defaults=`` when it reads other data; ``tour=`` names the tour's section that shows it (:data:`TOUR`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import (DataConfig, FitBase, FitConfig, RunConfig, load_data, opt, parse_int_list,
                     resolve_device, with_device)

__all__ = ["ModelSpec", "MODELS", "TOUR", "register_model", "model_spec", "load_families", "fit_model",
           "fit_limits", "is_lead", "checkpoint_data", "checkpoint_extra", "load_checkpoint_data",
           "resolve_likelihood", "GMMConfig", "CoderConfig", "VAEConfig", "CVAEConfig", "HVAEConfig",
           "AutoEncoderConfig", "MixtureVAEConfig", "PixelCNNConfig", "PixelRNNConfig"]

#: the tour's sections a family may name (``register_model(..., tour=KEY)``), in the lecture's order:
#: ``pixels`` (no latent variable), ``mixture`` (the discrete two-step story), ``gmm-to-vae`` (a continuous
#: code: the lecture's GMM -> VAE step and its relatives), ``conditional`` (labels in the story),
#: ``adversarial`` (no likelihood), ``text`` (sentences)
TOUR = ("pixels", "mixture", "gmm-to-vae", "conditional", "adversarial", "text")


@dataclass
class ModelSpec:
    """One registry entry: how to configure, build and fit a family, and where the tour shows it."""

    name: str
    config: type  # the config dataclass, a FitBase (its defaults are the CLI's defaults)
    build: Callable  # build(cfg, ds) -> model
    help: str = ""
    data_defaults: dict | None = None  # e.g. {"binarize": False} for the GAN
    load: Callable | None = None  # load(cfg, data_cfg) -> data set; default: load_data(data_cfg)
    tour: str | None = None  # the tour section that shows it (one of TOUR), None: not in the tour
    fit: Callable | None = None  # fit(model, cfg, ds, path, run, notes) -> model; default: fit_model

    @property
    def trainer(self) -> Callable:
        """The fit this family uses: its own ``fit`` or :func:`fit_model`."""
        return self.fit or fit_model


#: model name (``probgen train NAME``) -> :class:`ModelSpec`, in registration order
MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, config: type, build: Callable, *, help: str = "", data_defaults: dict | None = None,
                   load: Callable | None = None, tour: str | None = None, fit: Callable | None = None) -> None:
    """Add (or replace) a family in :data:`MODELS` (see the module docstring).

    :raises TypeError: ``config`` is not a :class:`~probgen.recipes.config.FitBase` dataclass.
    :raises ValueError: ``tour`` is not one of :data:`TOUR`.
    """
    if not (isinstance(config, type) and issubclass(config, FitBase)):
        raise TypeError(f"register_model({name!r}): config must be a FitBase dataclass (e.g. a FitConfig subclass)")
    if tour is not None and tour not in TOUR:
        raise ValueError(f"register_model({name!r}): tour={tour!r} is not a section; use one of {', '.join(TOUR)}")
    MODELS[name] = ModelSpec(name, config, build, help, data_defaults, load, tour, fit)


def model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; a one-line ``ValueError`` listing the known names otherwise."""
    load_families()
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def load_families() -> None:
    """Import the recipe modules that register more families (GAN, sentence VAE, ...)."""
    import importlib

    for mod in ("adversarial", "text"):
        try:
            importlib.import_module(f".{mod}", __package__)
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{mod}":
                raise


# -- helpers every fit uses -------------------------------------------------------------------
def resolve_likelihood(name: str, ds) -> str:
    """``auto`` → bernoulli for binary data, else normal."""
    return ("bernoulli" if ds.binarized else "normal") if name == "auto" else name


def load_checkpoint_data(path, data_cfg: DataConfig | None = None, *, seed: int = 0, need_labels: bool = False):
    """The data set of checkpoint ``path``: the one ``data_cfg`` names; when ``data_cfg`` or its
    ``data`` is None, the spec the checkpoint records (in ``data_cfg.data_dir`` when given), else
    the default :class:`DataConfig`.

    :raises ValueError: ``need_labels`` and the data set has none.
    """
    from dataclasses import replace

    if data_cfg is None or data_cfg.data is None:
        spec = checkpoint_data(path)
        if spec:
            from ..data import from_spec

            ds = from_spec(spec, data_dir=data_cfg.data_dir if data_cfg is not None else None)
        else:  # an old checkpoint that does not say: the default data set
            ds = load_data(replace(data_cfg or DataConfig(seed=seed), data=DataConfig().data))
    else:
        ds = load_data(data_cfg)
    if need_labels and ds.train_labels is None:
        raise ValueError(f"{ds.name}: this model needs labels, and the data has none")
    return ds


def checkpoint_data(path) -> dict | None:
    """The data spec recorded in a checkpoint (format 2), or None."""
    from ..io import load_checkpoint

    data = load_checkpoint(path).get("data")
    return data if isinstance(data, dict) and data.get("name") else None


def checkpoint_extra(path) -> dict:
    """What the trainer and the recipe recorded beside a checkpoint's weights (``fit_seconds``, ``history``,
    the recipe's metrics): the file's ``extra``, read without building the model."""
    from ..io import load_checkpoint

    return dict(load_checkpoint(path).get("extra") or {})


def fit_limits(cfg: FitBase, ds, y=None, notes: list | None = None):
    """``cfg.train_size`` and ``cfg.minutes`` applied: ``(training examples, their labels, callbacks)``.

    :raises ValueError: a train size < 1 or minutes <= 0.
    """
    x, callbacks, n = ds.train, [], cfg.train_size
    if n is not None:
        if n < 1:
            raise ValueError(f"--train-size must be >= 1, got {n}")
        x, y = x[:n], (y[:n] if y is not None else None)
        if notes is not None and n < len(ds.train):
            notes.append(f"trained on the first {len(x)} of {len(ds.train)} training examples (--train-size)")
    if cfg.minutes is not None:
        from ..infer import TimeLimit

        if not cfg.minutes > 0:
            raise ValueError(f"--minutes must be > 0, got {cfg.minutes}")
        callbacks.append(TimeLimit(cfg.minutes))
    return x, y, callbacks


def is_lead(cfg: FitBase) -> bool:
    """This process writes the run's files: always, except the ranks > 0 of a ``--distributed`` run."""
    return not cfg.distributed or os.environ.get("RANK", "0") == "0"


def fit_model(model, cfg: FitBase, ds, path: Path, run: RunConfig, notes: list | None = None, *,
              labels: bool | None = None, extra: Callable | None = None, **options):
    """Fit any family from its config: the one recipe fit. ``model.fit`` runs the trainer the story declares
    with ``cfg.fit_options(run)`` (plus ``options``), labels when ``model.traits.labels`` (or ``labels``) say
    so, ``--train-size`` / ``--minutes`` applied, and the trainer writes the final file ``path`` once, with
    the data spec and ``cfg.metrics(model, ds, notes)`` (and ``extra(model)``) in it.

    With ``cfg.distributed`` (inside ``torchrun``) every rank trains its shard on ``cuda:LOCAL_RANK`` or
    the CPU, and rank 0 alone writes ``path``.

    :param labels: pass the data's labels as ``y`` (default: ``model.traits.labels``).
    :param extra: a function of the trained model returning more numbers for its checkpoint.
    :return: the trained model.
    """
    from ..runtime import set_threads

    threads = set_threads(cfg.threads)  # one thread on a loaded 2-core machine; --threads overrides
    device = resolve_device(run.device, threads=threads)  # "auto" resolved (and said, by the CLI) here
    dist = None
    if cfg.distributed:
        from ..infer.distributed import Distributed

        dist = options["distributed"] = Distributed.from_env(device)  # CUDA: cuda:LOCAL_RANK, NCCL
    model = model.to(dist.device if dist is not None else device)
    labels = model.traits.labels if labels is None else labels
    x, y, limits = fit_limits(cfg, ds, ds.train_labels if labels else None, notes)
    options = {**cfg.fit_options(run), **options}
    options["callbacks"] = [*options.get("callbacks", ()), *limits]
    notes = notes if notes is not None else []

    def measured(trained) -> dict:  # the device the file was trained on, as every result records it
        return with_device({**cfg.metrics(trained, ds, notes), **(extra(trained) if extra is not None else {})},
                           trained.device, threads=threads)

    cfg.warm_start(model, ds, path, run)
    model.fit(x, y=y, val=ds.val, val_y=ds.val_labels if labels else None, checkpoint=path,
              data=getattr(ds, "spec", None), extra=measured, progress=not run.quiet, **options)
    if dist is not None:
        dist.barrier()  # no rank reports before rank 0's files are complete
    return model


# -- GMM ------------------------------------------------------------------------------------------
@dataclass
class GMMConfig(FitConfig):
    """Gaussian mixture / mixture of Bernoullis (EM, or SVI with the assignment enumerated)."""

    n_components: int = opt(10, "K, mixture components")
    likelihood: str = opt("auto", "auto: bernoulli for binary data, else normal",
                          choices=("auto", "normal", "bernoulli"))
    epochs: int = opt(50, "passes over the data (method svi)")
    batch_size: int = opt(256, "examples per step (method svi)")
    lr: float = opt(0.05, "Adam learning rate (method svi)")
    covariance: str = opt("diag", "covariance of each component", choices=("diag", "full"))
    reg_covar: float = opt(1e-6, "added to the variances (as scikit-learn)")
    method: str = opt("em", "em (E-step = the enumerated Pyro posterior) or svi (TraceEnum_ELBO)",
                      choices=("em", "svi"))
    max_iter: int = opt(100, "EM iterations at most")

    def fit_options(self, run: RunConfig) -> dict:
        """SVI's options with ``method="svi"``; for EM its own (``max_iter``), after checking the SVI options
        it ignores (a nonsense value is still a mistake worth naming). ``seed``: the k-means start."""
        if self.method == "svi":
            return {**super().fit_options(run), "method": "svi", "seed": run.seed}
        for name, ok in (("epochs must be >= 0", self.epochs >= 0), ("batch_size must be >= 1", self.batch_size >= 1),
                         ("lr must be > 0", self.lr > 0), ("patience must be >= 0", self.patience >= 0)):
            if not ok:
                raise ValueError(f"{name}, got {getattr(self, name.split()[0])}")
        if self.compile:
            raise ValueError("--compile captures the SVI step; EM has none (use --method svi, or drop --compile)")
        if self.distributed:
            raise ValueError("--distributed: EM runs in one process (use --method svi, or drop --distributed)")
        return {"method": "em", "max_iter": self.max_iter, "seed": run.seed, "log_dir": self.log_dir}


def _build_gmm(cfg: GMMConfig, ds):
    from ..models import GMM

    return GMM(cfg.n_components, likelihood=resolve_likelihood(cfg.likelihood, ds), covariance=cfg.covariance,
               reg_covar=cfg.reg_covar, x_dim=ds.x_dim, x_shape=ds.shape)


# -- VAE, CVAE, auto-encoder ------------------------------------------------------------------------
@dataclass
class CoderConfig(FitConfig):
    """The encoder/decoder options the VAE, CVAE, auto-encoder and mixture VAE share."""

    z_dim: int = opt(10, "code size")
    hidden: str = opt("256", "hidden widths, comma-separated")
    likelihood: str = opt("auto", "auto: bernoulli for binary data, else normal",
                          choices=("auto", "normal", "bernoulli"))
    epochs: int = opt(300, "passes over the data")

    def coder(self, ds) -> dict:
        """The constructor keywords these options give on data set ``ds``."""
        return dict(z_dim=self.z_dim, hidden=parse_int_list(self.hidden, "--hidden"),
                    likelihood=resolve_likelihood(self.likelihood, ds), x_shape=ds.shape)


@dataclass
class VAEConfig(CoderConfig):
    """Variational auto-encoder (SVI, Trace_ELBO or analytic KL)."""

    elbo: str = opt("meanfield", "meanfield = Trace_ELBO with analytic KL; iwae = the importance-weighted bound "
                                 "(Burda et al. 2016) with k = --num-particles",
                    choices=("meanfield", "trace", "jit", "jit-meanfield", "iwae"))
    num_particles: int = opt(1, "samples of z per example and step (--elbo iwae: k of the bound, e.g. 50)",
                             metavar="K")

    def fit_options(self, run: RunConfig) -> dict:
        return {**super().fit_options(run), "num_particles": self.num_particles}


def _build_vae(cfg: VAEConfig, ds):
    from ..models import VAE

    return VAE(ds.x_dim, elbo=cfg.elbo, **cfg.coder(ds))


@dataclass
class PPCAConfig(FitConfig):
    """Probabilistic PCA: z ~ N(0, I), x ~ N(W z + μ, σ² I), a Gaussian guide; exact log-likelihood."""

    z_dim: int = opt(10, "code size (principal directions)")
    epochs: int = opt(150, "passes over the data")
    lr: float = opt(1e-2, "Adam learning rate")


def _build_ppca(cfg: PPCAConfig, ds):
    from ..models import PPCA

    return PPCA(ds.x_dim, z_dim=cfg.z_dim, x_shape=ds.shape)


@dataclass
class CVAEConfig(VAEConfig):
    """Conditional VAE p(z) p(x | z, y), q(z | x, y); needs labels."""

    z_dim: int = opt(2, "code size (small: the label says which digit, the code only the style)")


def _build_cvae(cfg: CVAEConfig, ds):
    from ..models import CVAE

    if ds.train_labels is None:
        raise ValueError(f"{ds.name}: a CVAE needs labels, and the data has none")
    return CVAE(ds.x_dim, ds.n_classes, elbo=cfg.elbo, **cfg.coder(ds))


@dataclass
class HVAEConfig(FitConfig):
    """VAE with two stochastic layers p(z2) p(z1 | z2) p(x | z1), guide q(z1 | x) q(z2 | z1)."""

    z1_dim: int = opt(100, "size of the lower code z1")
    z2_dim: int = opt(50, "size of the upper code z2")
    hidden1: str = opt("100,100", "widths between x and z1, comma-separated")
    hidden2: str = opt("50,50", "widths between z1 and z2, comma-separated")
    activation: str = opt("tanh", "hidden activation", choices=("tanh", "relu", "softplus", "elu", "gelu"))
    likelihood: str = opt("auto", "auto: bernoulli for binary data, else normal",
                          choices=("auto", "normal", "bernoulli"))
    elbo: str = opt("trace", "trace = Monte Carlo ELBO; iwae = the importance-weighted bound, k = --num-particles",
                    choices=("trace", "iwae"))
    num_particles: int = opt(1, "samples of z per example and step (--elbo iwae: k of the bound)", metavar="K")
    epochs: int = opt(300, "passes over the data")

    def fit_options(self, run: RunConfig) -> dict:
        return {**super().fit_options(run), "num_particles": self.num_particles}


def _build_hvae(cfg: HVAEConfig, ds):
    from ..models import HVAE

    return HVAE(ds.x_dim, z1_dim=cfg.z1_dim, z2_dim=cfg.z2_dim, hidden1=parse_int_list(cfg.hidden1, "--hidden1"),
                hidden2=parse_int_list(cfg.hidden2, "--hidden2"), likelihood=resolve_likelihood(cfg.likelihood, ds),
                x_shape=ds.shape, activation=cfg.activation, elbo=cfg.elbo)


@dataclass
class AutoEncoderConfig(CoderConfig):
    """Plain auto-encoder, the VAE's layers, maximum likelihood of the reconstruction."""


def _build_ae(cfg: AutoEncoderConfig, ds):
    from ..models import AutoEncoder

    return AutoEncoder(ds.x_dim, **cfg.coder(ds))


# -- mixture VAE --------------------------------------------------------------------------------------
@dataclass
class MixtureVAEConfig(CoderConfig):
    """VAE with a Gaussian-mixture prior (c enumerated, TraceEnum_ELBO)."""

    n_clusters: int = opt(10, "K, components of the prior")
    fixed_weights: bool = opt(False, "keep the mixture weights uniform")
    warmup_epochs: int = opt(10, "epochs before the prior's components are placed on k-means clusters of the "
                                 "codes (0: no warm start)")
    epochs: int = opt(100, "passes over the data")

    def warm_start(self, model, ds, path: Path, run: RunConfig) -> None:
        """``warmup_epochs`` of SVI, then the prior's components on k-means clusters of the codes (not when
        resuming from ``path``'s resume file: that state is past its warm start)."""
        from ..io import last_path

        if self.warmup_epochs > 0 and not (self.resume and last_path(path).exists()):
            model.fit(ds.train, val=ds.val, epochs=self.warmup_epochs, batch_size=self.batch_size, lr=self.lr,
                      progress=not run.quiet, patience=None, clip_norm=self.clip_norm)
            model.init_clusters(ds.train, seed=run.seed)

    def metrics(self, model, ds, notes: list) -> dict:
        """The test cluster accuracy (clusters matched to labels by the Hungarian algorithm), with labels."""
        if ds.test_labels is None:
            return {}
        from ..models.mixture_vae import matched_accuracy

        acc = matched_accuracy(model.cluster(ds.test), ds.test_labels)
        notes.append(f"clusters: test accuracy {acc:.3f} (clusters matched to labels by the Hungarian algorithm)")
        return {"test_cluster_accuracy": acc}


def _build_mvae(cfg: MixtureVAEConfig, ds):
    from ..models import MixtureVAE

    return MixtureVAE(ds.x_dim, n_clusters=cfg.n_clusters, learn_weights=not cfg.fixed_weights, **cfg.coder(ds))


# -- pixel models -------------------------------------------------------------------------------------
@dataclass
class PixelCNNConfig(FitConfig):
    """Gated PixelCNN: exact log-likelihood, maximum likelihood by SVI with an empty guide."""

    channels: int = opt(32, "feature maps")
    n_layers: int = opt(5, "gated blocks / LSTM layers")
    kernel_size: int = opt(3, "odd kernel of the later layers")
    first_kernel: int = opt(7, "odd kernel of the mask-A layer")
    likelihood: str = opt("auto", "auto: bernoulli for binary data, else a softmax over grey levels",
                          choices=("auto", "bernoulli", "categorical"))
    levels: int | None = opt(None, "grey levels of the categorical likelihood (default: the data's, e.g. 17 "
                                   "for digits)")
    conditional: bool = opt(False, "class-conditional (needs labels; then `probgen sample --label K`)")
    epochs: int = opt(30, "passes over the data")
    batch_size: int = opt(64, "examples per step")
    lr: float = opt(2e-3, "Adam learning rate")

    def metrics(self, model, ds, notes: list) -> dict:
        """The data's name and binarization (older checkpoints kept no data spec: ``complete`` reads these)."""
        return {"data": ds.name, "binarized": ds.binarized}


@dataclass
class PixelRNNConfig(PixelCNNConfig):
    """PixelRNN with Row LSTM layers (one image row per LSTM step)."""

    n_layers: int = opt(2, "gated blocks / LSTM layers")


def _build_pixel(backbone: str):
    def build(cfg: PixelCNNConfig, ds):
        from ..models import PixelModel

        if len(ds.shape) != 2:
            raise ValueError(f"{ds.name}: a pixel model needs images [H, W], got examples of shape {list(ds.shape)}")
        likelihood = cfg.likelihood
        if likelihood == "auto":
            likelihood = "bernoulli" if ds.binarized else "categorical"
        if likelihood == "bernoulli" and not ds.binarized:
            raise ValueError("--likelihood bernoulli needs binary images: add --binarize")
        if cfg.conditional and ds.train_labels is None:
            raise ValueError(f"--conditional: {ds.name} has no labels")
        levels = cfg.levels or getattr(ds, "levels", None) or 256
        return PixelModel(backbone, shape=list(ds.shape), channels=cfg.channels, n_layers=cfg.n_layers,
                          kernel_size=cfg.kernel_size, first_kernel=cfg.first_kernel, likelihood=likelihood,
                          levels=levels, n_classes=ds.n_classes if cfg.conditional else None)

    return build


register_model("gmm", GMMConfig, _build_gmm, tour="mixture",
               help="Gaussian mixture / mixture of Bernoullis, enumerated assignment, fitted by EM")
register_model("vae", VAEConfig, _build_vae, tour="gmm-to-vae",
               help="variational auto-encoder (SVI, Trace_ELBO or analytic KL)")
register_model("ppca", PPCAConfig, _build_ppca, tour="gmm-to-vae", data_defaults={"binarize": False, "continuous": True},
               help="probabilistic PCA, the step between the GMM and the VAE: a continuous z and a linear map "
                    "(SVI, Gaussian guide), exact log-likelihood to check the IWAE estimate against")
register_model("cvae", CVAEConfig, _build_cvae, tour="conditional",
               help="conditional VAE p(z) p(x | z, y), q(z | x, y) (SVI, Trace_ELBO); needs labels")
register_model("hvae", HVAEConfig, _build_hvae, tour="gmm-to-vae",
               help="VAE with two stochastic layers (the IWAE paper's 2-layer story: x-100-100-z1(100)-50-50-z2(50)), "
                    "Monte Carlo ELBO or the IWAE bound")
register_model("autoencoder", AutoEncoderConfig, _build_ae, tour="gmm-to-vae",
               help="plain auto-encoder, same layers as the VAE, maximum likelihood of the reconstruction "
                    "(no latent site, no KL)")
register_model("mixture-vae", MixtureVAEConfig, _build_mvae, tour="gmm-to-vae",
               help="VAE with a Gaussian-mixture prior (c enumerated, TraceEnum_ELBO): clusters and generates")
register_model("pixelcnn", PixelCNNConfig, _build_pixel("gated"), tour="pixels",
               help="Gated PixelCNN (vertical + horizontal masked stacks, no blind spot), exact log-likelihood, "
                    "maximum likelihood by SVI with an empty guide")
register_model("pixelrnn", PixelRNNConfig, _build_pixel("rowlstm"), tour="pixels",
               help="PixelRNN with Row LSTM layers (one image row per LSTM step), exact log-likelihood, "
                    "maximum likelihood by SVI with an empty guide")

"""The trainable families: one config dataclass each (every default written once, here), and
the registry ``MODELS`` that ``train`` / ``compare`` (and ``probgen train NAME``) read.

How to add a family::

    @dataclass
    class MyConfig(FitConfig):          # FitConfig: epochs, batch_size, lr, patience, resume, ...
        epochs: int = opt(40, "passes over the data")   # override a default
        width: int = opt(64, "hidden width")            # the model's own options (help for --width)

    def _build_mine(cfg: MyConfig, ds):                 # construct the (untrained) model
        return MyModel(ds.x_dim, width=cfg.width)

    register_model("mine", MyConfig, _build_mine, fit_svi_model, help="one line for probgen train --help")

``fit(model, cfg, ds, path, run, notes) -> model`` trains the model, saves it to ``path`` (with
``data=ds.spec``) and may append summary lines to ``notes`` (a list the caller prints).
``fit_svi_model`` is the usual SVI fit; pass ``labels=True`` (needs labels) or ``data_defaults`` /
``load`` to :func:`register_model` when a family needs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import DataConfig, FitConfig, RunConfig, load_data, opt, parse_int_list, resolve_device

__all__ = ["ModelSpec", "MODELS", "register_model", "model_spec", "fit_svi_model", "fit_limits", "save_model",
           "checkpoint_data", "load_checkpoint_data", "remember_data", "resolve_likelihood", "GMMConfig",
           "CoderConfig", "VAEConfig", "CVAEConfig", "HVAEConfig", "AutoEncoderConfig", "MixtureVAEConfig", "PixelCNNConfig",
           "PixelRNNConfig"]


@dataclass
class ModelSpec:
    """One registry entry: how to configure, build and fit a family."""

    name: str
    config: type  # the config dataclass (its defaults are the CLI's defaults)
    build: Callable  # build(cfg, ds) -> model
    fit: Callable  # fit(model, cfg, ds, path, run, notes) -> model (saved to path)
    help: str = ""
    labels: bool = False  # the family needs labels
    data_defaults: dict | None = None  # e.g. {"binarize": False} for the GAN
    load: Callable | None = None  # load(cfg, data_cfg) -> data set; default: load_data(data_cfg)


#: model name (``probgen train NAME``) -> :class:`ModelSpec`, in registration order
MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, config: type, build: Callable, fit: Callable, *, help: str = "",
                   labels: bool = False, data_defaults: dict | None = None, load: Callable | None = None) -> None:
    """Add (or replace) a family in :data:`MODELS` (see the module docstring)."""
    MODELS[name] = ModelSpec(name, config, build, fit, help, labels, data_defaults, load)


def model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; a one-line ``ValueError`` listing the known names otherwise."""
    _load_families()
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def _load_families() -> None:
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


def save_model(model, path: Path, ds=None, *, extra: dict | None = None) -> Path:
    """Save ``model`` to ``path`` with the data spec it was trained on (see :func:`remember_data`)."""
    remember_data(model, ds)
    return model.save(path, extra=extra)


def remember_data(model, ds) -> None:
    """Let every checkpoint of ``model`` (the trainer's best/last ones too) record ``ds.spec``."""
    spec = getattr(ds, "spec", None)
    if spec is not None:
        model.checkpoint_data = spec


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


def fit_limits(cfg: FitConfig, ds, y=None, notes: list | None = None):
    """``cfg.train_size`` and ``cfg.minutes`` applied: ``(training images, their labels, callbacks)``.

    :raises ValueError: a train size < 1 or minutes <= 0.
    """
    x, callbacks = ds.train, []
    n = getattr(cfg, "train_size", None)
    if n is not None:
        if n < 1:
            raise ValueError(f"--train-size must be >= 1, got {n}")
        x, y = x[:n], (y[:n] if y is not None else None)
        if notes is not None and n < len(ds.train):
            notes.append(f"trained on the first {len(x)} of {len(ds.train)} training examples (--train-size)")
    if getattr(cfg, "minutes", None) is not None:
        from ..infer.callbacks import TimeLimit

        if not cfg.minutes > 0:
            raise ValueError(f"--minutes must be > 0, got {cfg.minutes}")
        callbacks.append(TimeLimit(cfg.minutes))
    return x, y, callbacks


def fit_svi_model(model, cfg: FitConfig, ds, path: Path, run: RunConfig, notes: list | None = None, *,
                  labels: bool = False, **options):
    """Fit an SVI story from a :class:`FitConfig`, checkpointing to ``path`` (best) and resuming.

    With ``cfg.distributed`` (inside ``torchrun``) every rank trains its shard on
    ``cuda:LOCAL_RANK`` or the CPU, and rank 0 alone writes ``path``."""
    dist = None
    if cfg.distributed:
        from ..infer.distributed import Distributed

        dist = options["distributed"] = Distributed.from_env(run.device)
    model = model.to(dist.device if dist is not None else resolve_device(run.device))
    from ..infer.callbacks import set_threads

    set_threads(cfg.threads)  # one thread on a loaded 2-core machine; --threads overrides
    remember_data(model, ds)
    x, y, limits = fit_limits(cfg, ds, ds.train_labels if labels else None, notes)
    val_y = ds.val_labels if labels else None
    options["callbacks"] = [*options.get("callbacks", ()), *limits]
    if getattr(cfg, "num_particles", None) is not None:  # families with a --num-particles option
        options.setdefault("num_particles", cfg.num_particles)
    if cfg.compile:  # only then: families with a fit of their own need not know the option
        options["compile"] = True
    model.fit(x, y=y, val=ds.val, val_y=val_y, epochs=cfg.epochs, batch_size=cfg.batch_size,
              lr=cfg.lr, patience=cfg.patience, checkpoint=path, resume=cfg.resume,
              progress=not run.quiet, clip_norm=cfg.clip_norm, log_dir=cfg.log_dir, **options)
    if (dist is None or dist.is_main) and (cfg.epochs == 0 or not path.exists()):
        save_model(model, path, ds)
    if dist is not None:
        dist.barrier()  # no rank reports before rank 0's files are complete
    return model


def _labelled_fit(model, cfg, ds, path, run, notes=None):
    return fit_svi_model(model, cfg, ds, path, run, notes, labels=True)


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


def _build_gmm(cfg: GMMConfig, ds):
    from ..models import GMM

    return GMM(cfg.n_components, likelihood=resolve_likelihood(cfg.likelihood, ds), covariance=cfg.covariance,
               reg_covar=cfg.reg_covar, x_dim=ds.x_dim, x_shape=ds.shape)


def _fit_gmm(model, cfg: GMMConfig, ds, path: Path, run: RunConfig, notes=None):
    model = model.to(resolve_device(run.device))
    from ..infer.callbacks import set_threads

    set_threads(cfg.threads)  # one thread on a loaded 2-core machine; --threads overrides
    # EM ignores the SVI options, but a nonsense value is still a mistake worth naming
    for name, ok in (("epochs must be >= 0", cfg.epochs >= 0), ("batch_size must be >= 1", cfg.batch_size >= 1),
                     ("lr must be > 0", cfg.lr > 0), ("patience must be >= 0", cfg.patience >= 0)):
        if not ok:
            raise ValueError(f"{name}, got {getattr(cfg, name.split()[0])}")
    if cfg.compile and cfg.method != "svi":
        raise ValueError("--compile captures the SVI step; EM has none (use --method svi, or drop --compile)")
    x, _, limits = fit_limits(cfg, ds, None, notes)
    if cfg.method == "svi":
        model.fit(x.to(model.device), method="svi", seed=run.seed, progress=not run.quiet,
                  val=ds.val, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                  patience=cfg.patience, checkpoint=path, resume=cfg.resume, callbacks=limits, log_dir=cfg.log_dir)
    else:
        model.fit(x.to(model.device), max_iter=cfg.max_iter, seed=run.seed, progress=not run.quiet,
                  callbacks=limits, log_dir=cfg.log_dir)
    save_model(model, path, ds, extra={"fit_seconds": model.fit_seconds})
    return model


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


def _build_vae(cfg: VAEConfig, ds):
    from ..models import VAE

    return VAE(ds.x_dim, elbo=cfg.elbo, **cfg.coder(ds))


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


def _fit_ae(model, cfg, ds, path, run, notes=None):
    model = fit_svi_model(model, cfg, ds, path, run, notes)
    save_model(model, path, ds)  # again: the best-epoch checkpoint predates the fitted code Gaussian
    return model


# -- mixture VAE --------------------------------------------------------------------------------------
@dataclass
class MixtureVAEConfig(CoderConfig):
    """VAE with a Gaussian-mixture prior (c enumerated, TraceEnum_ELBO)."""

    n_clusters: int = opt(10, "K, components of the prior")
    fixed_weights: bool = opt(False, "keep the mixture weights uniform")
    warmup_epochs: int = opt(10, "epochs before the prior's components are placed on k-means clusters of the "
                                 "codes (0: no warm start)")
    epochs: int = opt(100, "passes over the data")


def _build_mvae(cfg: MixtureVAEConfig, ds):
    from ..models import MixtureVAE

    return MixtureVAE(ds.x_dim, n_clusters=cfg.n_clusters, learn_weights=not cfg.fixed_weights, **cfg.coder(ds))


def _fit_mvae(model, cfg: MixtureVAEConfig, ds, path: Path, run: RunConfig, notes=None):
    from ..io import last_path
    from ..models.mixture_vae import matched_accuracy

    model = model.to(resolve_device(run.device))
    if cfg.warmup_epochs > 0 and not (cfg.resume and last_path(path).exists()):
        model.fit(ds.train, val=ds.val, epochs=cfg.warmup_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                  progress=not run.quiet, patience=None, clip_norm=cfg.clip_norm)
        model.init_clusters(ds.train, seed=run.seed)
    fit_svi_model(model, cfg, ds, path, run, notes)
    if ds.test_labels is not None:
        acc = matched_accuracy(model.cluster(ds.test), ds.test_labels)
        if notes is not None:
            notes.append(f"clusters: test accuracy {acc:.3f} (clusters matched to labels by the Hungarian algorithm)")
        model.checkpoint_extra = {"test_cluster_accuracy": acc}
        save_model(model, path, ds, extra=model.checkpoint_extra)
    return model


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


def _fit_pixel(model, cfg: PixelCNNConfig, ds, path, run, notes=None):
    model = fit_svi_model(model, cfg, ds, path, run, notes, labels=cfg.conditional)
    history = getattr(getattr(model, "train_result", None), "history", [])
    save_model(model, path, ds, extra={"data": ds.name, "binarized": ds.binarized, "history": history})
    return model


register_model("gmm", GMMConfig, _build_gmm, _fit_gmm,
               help="Gaussian mixture / mixture of Bernoullis, enumerated assignment, fitted by EM")
register_model("vae", VAEConfig, _build_vae, fit_svi_model,
               help="variational auto-encoder (SVI, Trace_ELBO or analytic KL)")
register_model("cvae", CVAEConfig, _build_cvae, _labelled_fit, labels=True,
               help="conditional VAE p(z) p(x | z, y), q(z | x, y) (SVI, Trace_ELBO); needs labels")
register_model("hvae", HVAEConfig, _build_hvae, fit_svi_model,
               help="VAE with two stochastic layers (the IWAE paper's 2-layer story: x-100-100-z1(100)-50-50-z2(50)), "
                    "Monte Carlo ELBO or the IWAE bound")
register_model("autoencoder", AutoEncoderConfig, _build_ae, _fit_ae,
               help="plain auto-encoder, same layers as the VAE, maximum likelihood of the reconstruction "
                    "(no latent site, no KL)")
register_model("mixture-vae", MixtureVAEConfig, _build_mvae, _fit_mvae,
               help="VAE with a Gaussian-mixture prior (c enumerated, TraceEnum_ELBO): clusters and generates")
register_model("pixelcnn", PixelCNNConfig, _build_pixel("gated"), _fit_pixel,
               help="Gated PixelCNN (vertical + horizontal masked stacks, no blind spot), exact log-likelihood, "
                    "maximum likelihood by SVI with an empty guide")
register_model("pixelrnn", PixelRNNConfig, _build_pixel("rowlstm"), _fit_pixel,
               help="PixelRNN with Row LSTM layers (one image row per LSTM step), exact log-likelihood, "
                    "maximum likelihood by SVI with an empty guide")

"""``probgen train``, ``probgen compare`` and ``probgen sample``: the spine of the CLI."""
from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

from . import common
from .common import CLIError, add_data_args, add_fit_args, add_run_args, add_trainer

__all__ = ["register", "COMPARE_EVALUATORS", "add_compare_evaluator"]

#: model name -> fn(model, ds, args) -> (per-example log-lik tensor [n], estimator, num_samples)
COMPARE_EVALUATORS: dict = {}


def add_compare_evaluator(name: str, fn) -> None:
    """Let a family score its model in ``probgen compare`` its own way (e.g. Parzen for GANs)."""
    COMPARE_EVALUATORS[name] = fn


def register(sub) -> None:
    # -- train ------------------------------------------------------------------
    p = sub.add_parser("train", help="train one model and write OUT/<model>.pt",
                       description="Train a model. `probgen train MODEL --help` lists a model's flags.")
    p.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    p.add_argument("--story", default=None, help="train your own story: path/to/file.py:ClassName "
                   "(runs that file's code)")
    p.add_argument("--story-args", nargs="*", default=[], metavar="KEY=VALUE",
                   help="constructor arguments of the story")
    try:  # the data/training flags of --story (probgen/cli/story.py)
        from .story import add_story_flags
    except ModuleNotFoundError:
        pass
    else:
        add_story_flags(p)
    models = p.add_subparsers(dest="model", metavar="MODEL", parser_class=common.ArgumentParser)
    # replace, not append: main() may build the parser more than once in one process (tests, notebooks)
    common._TRAIN_SUBPARSERS[:] = [models]
    p.set_defaults(func=cmd_train, _train_parser=p)
    add_trainer("gmm", "Gaussian mixture / mixture of Bernoullis, enumerated assignment, fitted by EM",
                _gmm_args, _gmm_run)
    add_trainer("vae", "variational auto-encoder (SVI, Trace_ELBO or analytic KL)", _vae_args, _vae_run)

    # -- compare ----------------------------------------------------------------
    c = sub.add_parser("compare", help="train (or load) several models and compare test log-likelihoods",
                       description="GMM vs VAE (and other families) on the same test set, one table.")
    add_data_args(c)
    add_run_args(c, out="runs/compare")
    c.add_argument("--models", default="gmm,vae", help="comma-separated model names (default: gmm,vae)")
    c.add_argument("--num-samples", type=int, default=1000,
                   help="importance samples K for IWAE estimates (default: 1000)")
    c.add_argument("--from", dest="from_dir", default=None,
                   help="load DIR/<model>.pt instead of training")
    c.add_argument("--epochs", type=int, default=None, help="override each model's default epochs")
    c.add_argument("--no-diagnostics", action="store_true", help="skip the ArviZ elpd comparison")
    c.set_defaults(func=cmd_compare)

    # -- sample -----------------------------------------------------------------
    s = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid")
    s.add_argument("checkpoint", help="a .pt file written by probgen")
    s.add_argument("-n", type=int, default=64, help="number of samples (default: 64)")
    s.add_argument("--out", default="samples.png", help="PNG file (default: samples.png)")
    s.add_argument("--npy", default=None, help="also save the raw samples, [n, H, W] in [0, 1]")
    s.add_argument("--label", type=int, default=None, help="class to generate (conditional models)")
    s.add_argument("--mean", action="store_true", help="decoder/component means instead of draws")
    s.add_argument("--temperature", type=float, default=None, help="sampling temperature, where supported")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_sample)


# -- trainers ---------------------------------------------------------------------------
def _gmm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-components", type=int, default=10, help="K (default: 10)")
    p.add_argument("--likelihood", choices=("auto", "normal", "bernoulli"), default="auto",
                   help="auto: bernoulli for binary data, else normal")
    p.add_argument("--covariance", choices=("diag", "full"), default="diag")
    p.add_argument("--reg-covar", type=float, default=1e-6, help="added to the variances (as scikit-learn)")
    p.add_argument("--method", choices=("em", "svi"), default="em",
                   help="em (E-step = the enumerated Pyro posterior) or svi (TraceEnum_ELBO)")
    p.add_argument("--max-iter", type=int, default=100, help="EM iterations at most")
    add_fit_args(p, epochs=50, batch_size=256, lr=0.05)


def _likelihood(args, ds) -> str:
    return ("bernoulli" if ds.binarized else "normal") if args.likelihood == "auto" else args.likelihood


def _gmm_run(args, ds, path: Path):
    from ..models import GMM

    model = GMM(args.n_components, likelihood=_likelihood(args, ds), covariance=args.covariance,
                reg_covar=args.reg_covar, x_dim=ds.x_dim, x_shape=ds.shape)
    model = model.to(common.resolve_device(args.device))
    # EM ignores the SVI flags, but a nonsense value is still a mistake worth naming
    for name, ok in (("epochs must be >= 0", args.epochs >= 0), ("batch_size must be >= 1", args.batch_size >= 1),
                     ("lr must be > 0", args.lr > 0), ("patience must be >= 0", args.patience >= 0)):
        if not ok:
            raise CLIError(f"{name}, got {getattr(args, name.split()[0])}")
    if args.method == "svi":
        model.fit(ds.train.to(model.device), method="svi", seed=args.seed, progress=not args.quiet,
                  val=ds.val, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  patience=args.patience, checkpoint=path, resume=args.resume)
    else:
        model.fit(ds.train.to(model.device), max_iter=args.max_iter, seed=args.seed, progress=not args.quiet)
    model.save(path, extra={"fit_seconds": model.fit_seconds})
    return model


def _vae_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--z-dim", type=int, default=10, help="code size (default: 10)")
    p.add_argument("--hidden", default="256", help="hidden widths, comma-separated (default: 256)")
    p.add_argument("--likelihood", choices=("auto", "normal", "bernoulli"), default="auto")
    p.add_argument("--elbo", choices=("meanfield", "trace", "jit", "jit-meanfield"), default="meanfield",
                   help="meanfield = Trace_ELBO with analytic KL (default)")
    add_fit_args(p, epochs=300, batch_size=128, lr=1e-3)


def _vae_run(args, ds, path: Path):
    from ..models import VAE

    model = VAE(ds.x_dim, z_dim=args.z_dim, hidden=common.parse_int_list(args.hidden, "--hidden"),
                likelihood=_likelihood(args, ds), x_shape=ds.shape, elbo=args.elbo)
    return common.fit_story(model, args, ds, path)


def cmd_train(args) -> int:
    if args.story:
        try:
            from .story import run_story_train  # noqa: PLC0415 - optional family
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.story":
                raise
            raise CLIError("--story: the story commands are not installed in this probgen") from None

        return run_story_train(args)
    stray = [k[len("story_opt_"):].replace("_", "-") for k in vars(args) if k.startswith("story_opt_")]
    if stray:  # `probgen train --epochs 5 vae`: the model's flags go after its name
        raise CLIError(f"--{stray[0]} before the model name is for --story; write probgen train "
                       f"{getattr(args, 'model', None) or 'MODEL'} --{stray[0]} ...")
    if not getattr(args, "model", None):
        raise CLIError(f"choose a model: {', '.join(common.TRAINERS)} (or --story FILE.py:Class)")
    common.seed_everything(args.seed)
    ds = common.load_dataset(args)
    out = common.out_dir(args)
    path = out / f"{args.model}.pt"
    t0 = time.perf_counter()
    model = common.TRAINERS[args.model](args, ds, path)
    print(f"trained {args.model} on {ds.describe()} in {time.perf_counter() - t0:.1f} s "
          f"({model.n_params() if hasattr(model, 'n_params') else '?'} parameters) -> {path}")
    return 0


# -- compare ----------------------------------------------------------------------------
def _trainer_args(name: str, args) -> argparse.Namespace:
    """Defaults of `probgen train NAME`, with compare's shared flags laid over them."""
    parser = common._TRAIN_SUBPARSERS[0].choices[name]
    targs = parser.parse_args([])
    for key in ("data", "data_dir", "binarize", "continuous", "download", "seed", "device", "quiet"):
        setattr(targs, key, getattr(args, key))
    if args.epochs is not None and hasattr(targs, "epochs"):
        targs.epochs = args.epochs
    targs.resume = False
    targs.model = name
    return targs


def _default_evaluate(model, ds, args):
    import torch

    from .. import log_likelihood  # the model's own log_prob: exact, or IWAE summing enumerated sites

    test = ds.test.to(model.device)
    y = ds.test_labels if getattr(model, "needs_labels", False) else None
    with torch.no_grad():
        values = log_likelihood(model, test, y=y, num_samples=args.num_samples)
    exact = getattr(model, "has_exact_log_prob", False)
    return values.cpu(), ("exact" if exact else "IWAE"), (None if exact else args.num_samples)


def cmd_compare(args) -> int:
    from ..evaluate import PUBLISHED, summarize
    from ..io import atomic_write, write_json

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in common.TRAINERS]
    if not names or unknown:
        raise CLIError(f"--models: unknown {', '.join(unknown) or '(empty)'}; "
                       f"choose from {', '.join(common.TRAINERS)}")
    if args.num_samples < 1:
        raise CLIError(f"--num-samples must be >= 1, got {args.num_samples}")
    common.seed_everything(args.seed)
    ds = common.load_dataset(args)
    out = common.out_dir(args)
    density = not ds.binarized
    print(f"data: {ds.describe()}")
    print("unit: " + ("log density (nats/image) of dequantized data" if density
                      else "log probability mass (nats/image) of binary data"))
    rows, pointwise = [], {}
    for name in names:
        ckpt = out / f"{name}.pt"
        if args.from_dir:
            src = Path(args.from_dir) / f"{name}.pt"
            model = common.load_model(src, device=args.device)
            if model.kind != name and model.kind in common.TRAINERS:  # e.g. a GMM saved as vae.pt
                raise CLIError(f"--from {src}: holds a {model.kind!r} model, not {name!r}")
            fit_seconds = float(getattr(model, "checkpoint_extra", {}).get("fit_seconds", float("nan")))
            if src.resolve() != ckpt.resolve():
                model.save(ckpt, extra=getattr(model, "checkpoint_extra", {}))
        else:
            common.seed_everything(args.seed)
            targs = _trainer_args(name, args)
            print(f"training {name} ...", flush=True)
            t0 = time.perf_counter()
            model = common.TRAINERS[name](targs, ds, ckpt)
            fit_seconds = time.perf_counter() - t0
            extra = dict(getattr(model, "checkpoint_extra", {}) or {})
            extra["fit_seconds"] = fit_seconds
            model.save(ckpt, extra=extra)
        model.eval()
        common.seed_everything(args.seed)
        evaluate = COMPARE_EVALUATORS.get(name, _default_evaluate)
        values, estimator, k = evaluate(model, ds, args)
        res = summarize(values)
        pointwise[name] = values.double().numpy()
        rows.append({"name": name, "test_log_likelihood": res.mean, "stderr": res.stderr,
                     "estimator": estimator, "num_samples": k, "fit_seconds": fit_seconds,
                     "n_params": int(model.n_params()) if hasattr(model, "n_params") else None,
                     "n_test": res.n})
        _sample_grid(model, out / f"samples_{name}.png")
    # -- the table --------------------------------------------------------------------
    header = f"{'model':<12}{'#params':>10}  {'test log-lik (nats/image)':>26}  {'estimator':<10}{'K':>6}{'fit s':>9}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        k = "-" if r["num_samples"] is None else str(r["num_samples"])
        ll = f"{r['test_log_likelihood']:.2f} ± {r['stderr']:.2f}"
        print(f"{r['name']:<12}{r['n_params'] or 0:>10}  {ll:>26}  {r['estimator']:<10}{k:>6}{r['fit_seconds']:>9.1f}")
    result = {"data": {"name": ds.name, "n_test": len(ds.test), "shape": list(ds.shape),
                       "binarized": ds.binarized, "dequantized": ds.dequantized,
                       "unit": "nats per image", "quantity": "log density" if density else "log mass"},
              "seed": args.seed, "models": rows}
    if ds.name == "binarized-mnist":
        result["published"] = PUBLISHED["binarized-mnist"]
        print("\npublished test NLL on this split (nats, lower is better):")
        for entry in PUBLISHED["binarized-mnist"]:
            print(f"  {entry['model']:<40} {entry['nll']:>7.2f}   {entry['source']}")
    import numpy as np

    atomic_write(out / "pointwise.npz", lambda f: np.savez(f, **pointwise))
    if len(pointwise) > 1 and not args.no_diagnostics:
        result["elpd"] = _elpd(pointwise, out)
    write_json(out / "results.json", result)
    _bar_figure(rows, out / "compare.png", density)
    print(f"\nwrote {out / 'results.json'}, checkpoints and figures in {out}/")
    return 0


def _elpd(pointwise: dict, out: Path) -> dict | None:
    try:
        from .. import diagnostics
    except ImportError:
        return None
    if not hasattr(diagnostics, "compare_pointwise"):
        return None
    table = diagnostics.compare_pointwise(pointwise, figure=out / "elpd_compare.png")
    print("\nelpd comparison (ArviZ, held-out pointwise log-lik):")
    print(table.get("text", ""))
    return {k: v for k, v in table.items() if k != "text"}


def _sample_grid(model, path: Path) -> None:
    import torch

    if not hasattr(model, "sample"):
        return
    kwargs = {}
    if "mean" in inspect.signature(model.sample).parameters and model.kind not in ("gmm",):
        kwargs["mean"] = True  # decoder means: the usual way to show VAE samples
    try:
        with torch.no_grad():
            x = model.sample(64, **kwargs)
    except (NotImplementedError, TypeError):
        return
    if x.dim() == 2:
        return
    common.save_images(x.cpu(), path, nrow=8)


def _bar_figure(rows, path: Path, density: bool) -> None:
    from ..plots import new_figure, savefig

    fig, ax = new_figure(figsize=(5, 3))
    names = [r["name"] for r in rows]
    ax.barh(names, [r["test_log_likelihood"] for r in rows],
            xerr=[2 * r["stderr"] for r in rows], color="tab:blue")
    ax.set_xlabel(("log density" if density else "log-likelihood") + " (nats/image, ±2 s.e.)")
    ax.set_title("test log-likelihood, higher is better")
    savefig(fig, path)


# -- sample -----------------------------------------------------------------------------
def cmd_sample(args) -> int:
    import torch

    model = common.load_for_sampling(args)
    params = inspect.signature(model.sample).parameters
    kwargs = {}
    for key in ("label", "mean", "temperature"):
        value = getattr(args, key)
        if value is None or value is False:
            continue
        if key not in params:
            raise CLIError(f"--{key}: a {model.kind} checkpoint does not take it")
        kwargs[key] = value
    with torch.no_grad():
        x = model.sample(args.n, **kwargs)
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], str):  # text models
        print("\n".join(x))
        return 0
    common.save_images(x.cpu(), args.out, npy=args.npy)
    print(f"wrote {args.n} samples from {args.checkpoint} to {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0

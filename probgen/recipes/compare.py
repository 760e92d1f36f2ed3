"""The ``compare`` recipe: train (or load) several families, score each on the same test set.

One scoring policy: :func:`probgen.evaluate.score`. The "test log-likelihood" column is log p(x)
in nats per example; for a CVAE that is the marginal log Σ_y p(y) p(x | y), and log p(x | y)
appears only in its own column (``conditional_log_likelihood``). Every row names its estimator
and K, and the share of test points with PSIS k̂ > 0.7 where the estimator has one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import (DataConfig, RunConfig, load_data, opt, out_dir, resolve_device, runs_in, seed_everything,
                     with_device)
from .models import MODELS, checkpoint_extra, load_families
from .train import save_images, train_model

__all__ = ["CompareConfig", "CompareResult", "compare", "score_model", "refit_for_scoring"]


@dataclass
class CompareConfig:
    """``probgen compare``: which families, how they are scored, where the run goes."""

    models: str = opt("gmm,vae", "comma-separated model names")
    num_samples: int = opt(1000, "importance samples K for IWAE estimates")
    from_dir: str | None = opt(None, "load DIR/<model>.pt instead of training", flag="--from")
    epochs: int | None = opt(None, "override each model's default epochs")
    refit_guide: int = opt(0, "before scoring, train each model's guide alone (model frozen) for EPOCHS epochs with "
                              "the IWAE bound: a tighter estimate of the same p(x); models without a guide of their "
                              "own are scored as they are", metavar="EPOCHS")
    refit_k: int = opt(10, "k of the bound --refit-guide trains with")
    refine: int = opt(0, "score with a proposal fitted to each test example for STEPS Adam steps on its IWAE "
                         "bound, started from the guide: a tighter estimate of the same p(x) at ~7x the scoring "
                         "time of K=1000", metavar="STEPS")
    no_diagnostics: bool = opt(False, "skip the ArviZ elpd comparison")
    log_dir: str | None = opt(None, "TensorBoard logs of each model trained here under DIR/<model>, with its "
                                    "test log-likelihood (test/log_likelihood); needs pip install 'probgen[tb]'",
                              metavar="DIR")
    story: str = opt("", "also train and score your own story FILE.py:NAME (any Pyro model/guide pair; "
                         "runs that file's code) as one more row")
    story_args: list = opt(None, "its constructor arguments: KEY=VALUE ... or one JSON object", nargs="*",
                           metavar="KEY=VALUE", default_factory=list)
    story_name: str | None = opt(None, "its row's name (default: FILE.py:NAME; never a built-in's)", metavar="NAME")
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = runs_in("runs/compare")


@dataclass
class CompareResult:
    """The rows of the table, the JSON written, and where everything went."""

    rows: list
    json_path: Path
    out: Path
    result: dict  # what results.json holds
    dataset: object
    elpd_text: str | None = None

    def table(self) -> str:
        """The comparison table as printed by ``probgen compare``."""
        w = max([12] + [len(r["name"]) + 2 for r in self.rows])  # a story's row: FILE.py:NAME
        header = (f"{'model':<{w}}{'#params':>10}  {'test log-lik (nats/image)':>26}  {'estimator':<26}{'K':>6}"
                  f"{'fit wall s':>11}")
        lines = [header, "-" * len(header)]
        for r in self.rows:
            k = "-" if r["num_samples"] is None else str(r["num_samples"])
            ll = f"{r['test_log_likelihood']:.2f} ± {r['stderr']:.2f}"
            lines.append(f"{r['name']:<{w}}{r['n_params'] or 0:>10}  {ll:>26}  {r['estimator']:<26}{k:>6}"
                         f"{r['fit_seconds']:>11.1f}")
        where = sorted({str(r.get("fit_device") or "not recorded") for r in self.rows})
        lines.append(f"  fit wall s: training wall-clock seconds, on {' / '.join(where)}")
        for r in self.rows:
            if r.get("conditional_log_likelihood") is not None:
                lines.append(f"  {r['name']}: column = {r['quantity']}; conditional log p(x | true y) "
                             f"{r['conditional_log_likelihood']:.2f} (separate column, not comparable)")
            if r.get("bandwidth") is not None:
                lines.append(f"  {r['name']}: Parzen-window estimate (weak estimator), bandwidth {r['bandwidth']:.3g} "
                             f"chosen on validation, {r['num_samples']} generator samples")
            if r.get("guide_refit"):
                g = r["guide_refit"]
                lines.append(f"  {r['name']}: guide refit before scoring (IWAE k={g['k']}, {g['epochs']} epochs, "
                             f"best {g['best_epoch']}); the model was frozen: same p(x), tighter estimate")
            if r.get("khat_share") is not None:
                lines.append(f"  {r['name']}: share of test points with k̂ > 0.7: {r['khat_share']:.3f}")
            if r.get("global_latents"):
                lines.append(f"  {r['name']}: {r['global_latents']}")
            if r.get("warning"):
                lines.append(f"  warning ({r['name']}): {r['warning']}")
            if r.get("hint"):
                lines.append(f"  {r['name']}: {r['hint']}")
        return "\n".join(lines)


def _names(models) -> list[str]:
    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models) if m.strip()]
    load_families()  # imports every family module, so that MODELS is complete
    unknown = [m for m in names if m not in MODELS]
    if not names or unknown:
        raise ValueError(f"--models: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(MODELS)}")
    own = [m for m in names if MODELS[m].load is not None]
    if own:  # e.g. the sentence VAE reads its own corpus, not the images every row is scored on
        raise ValueError(f"--models: {own[0]} trains on its own data, not on --data; it cannot share this table")
    return names


def _family_data(data: DataConfig, names: list[str], say) -> DataConfig:
    """The data every row is scored on. A family registered for continuous data
    (``data_defaults={"continuous": True}``: a Gaussian story such as PPCA, whose density of 0/1 pixels is
    no probability) moves a comparison whose data options were all left at their defaults onto dequantized
    grey levels, said in one line; data options that were given are kept."""
    wants = [n for n in names if (MODELS[n].data_defaults or {}).get("continuous")]
    if not wants or data != DataConfig() or data.continuous:
        return data
    say(f"{', '.join(wants)}: a density of continuous data; every row is scored on dequantized grey levels "
        "(as --continuous)", flush=True)
    return replace(data, binarize=False, continuous=True)


def score_model(model, ds, *, num_samples: int, seed: int = 0, weights: bool = False, refine: int = 0,
                estimator: str | None = None) -> dict:
    """One row's numbers: :func:`probgen.evaluate.score` on ``ds.test`` (labels, validation split and
    dequantization passed on; the values are popped by :func:`compare` into ``pointwise.npz``); with
    ``weights`` also the score's ``log_weights`` and ``khat`` (``None`` where none), for the caller to pop;
    ``refine``: :func:`probgen.evaluate.score`'s per-example proposal (steps); ``estimator``: its
    ``estimator=`` (``"iwae"``: the guide's estimate of an exact story)."""
    import torch

    from ..evaluate import score

    model.eval()
    y = ds.test_labels if model.traits.labels else None
    with torch.no_grad():
        s = score(model, ds.test.to(model.device), y=y, num_samples=num_samples, val=ds.val, seed=seed,
                  dequantized=bool(ds.dequantized), refine=refine, estimator=estimator)
    row = {"estimator": s.estimator, "num_samples": s.k, "khat_share": s.khat_share, "warning": s.warning,
           "quantity": "log p(x)", "values": s.values.detach().cpu().double(), **s.extra}
    if weights:
        row.update(log_weights=s.log_weights, khat=s.khat)
    if s.conditional is not None:
        cond = s.conditional.detach().cpu().double()
        prior = s.extra.get("label_prior")
        row.update(quantity="log p(x) = log Σ_y p(y) p(x | y) (marginal over the label"
                            + (f", p(y) {prior})" if prior else ")"),
                   conditional_log_likelihood=float(cond.mean()),
                   conditional_stderr=float(cond.std() / math.sqrt(len(cond))) if len(cond) > 1 else 0.0)
    return row


def refit_for_scoring(model, ds, *, epochs: int, k: int, seed: int = 0, progress: bool = False, say=None) -> dict | None:
    """``--refit-guide`` (``compare`` and ``experiments/binarized_mnist.py``): the model's guide trained
    alone on ``ds.train`` (:func:`probgen.infer.refit_guide`, labels for a conditional model, best on
    ``ds.val``); returns what a result row records, or None for a model whose score does not use a
    guide (a GMM, a pixel model, a GAN, the auto-encoder), which is scored as it is."""
    from ..evaluate import scores_with_guide
    from ..infer.refit import NoGuideParameters, refit_guide

    if not scores_with_guide(model):
        return None
    labels = model.traits.labels
    seed_everything(seed)
    try:
        info = refit_guide(model, ds.train.to(model.device), y=ds.train_labels if labels else None,
                           val=ds.val.to(model.device), val_y=ds.val_labels if labels else None,
                           num_particles=k, epochs=epochs, progress=progress)
    except NoGuideParameters:
        return None
    if say is not None:
        say(f"refit {model.kind}'s guide ({epochs} epochs, IWAE k={k})", flush=True)
    return {key: info[key] for key in ("k", "epochs", "best_epoch", "val_bound", "seconds")}


def _story_row(cfg: CompareConfig, ds, out: Path, pointwise: dict, say) -> dict:
    """The row of ``--story``: trained into ``out`` as ``train --story`` would (its files named after the story,
    :func:`probgen.recipes.story.story_stem`), scored by the one policy like every row."""
    import dataclasses

    from ..evaluate import summarize
    from .story import StoryConfig, story_stem, svi_mixture_hint, user_story
    from .usercode import user_code

    seed_everything(cfg.run.seed)
    say(f"training {cfg.story} ...", flush=True)
    story_cfg = StoryConfig(story=cfg.story, story_args=cfg.story_args, story_name=cfg.story_name, data=cfg.data,
                            num_samples=0, run=dataclasses.replace(cfg.run, out=str(out)),
                            **({"epochs": cfg.epochs} if cfg.epochs is not None else {}))
    res = user_story(story_cfg, hold=False)  # compare holds the folder
    seed_everything(cfg.run.seed)
    with user_code(cfg.story, "scoring it"):  # its model and guide run again
        row = score_model(res.model, ds, num_samples=cfg.num_samples, seed=cfg.run.seed, refine=cfg.refine)
        _sample_grid(res.model, out / f"samples_{story_stem(res.name)}.png")
    hint = svi_mixture_hint(res.model, story_cfg.lr, story_cfg.epochs)
    if hint:
        row["hint"] = hint
    values = row.pop("values")
    s = summarize(values)
    pointwise[res.name] = values.numpy()
    return {"name": res.name, "test_log_likelihood": s.mean, "stderr": s.stderr, **row, "fit_seconds": res.seconds,
            "n_params": int(res.model.n_params()), "n_test": s.n, "story": cfg.story, "checkpoint": str(res.path)}


def _trainer_params(name: str, epochs: int | None, log_dir: str | None = None):
    """The family's defaults, with ``--epochs`` and ``--log-dir`` (every registered config declares both)."""
    params = replace(MODELS[name].config(), resume=False)
    if epochs is not None:
        params = replace(params, epochs=epochs)
    if log_dir is not None:
        params = replace(params, log_dir=str(Path(log_dir) / name))
    return params


def compare(cfg: CompareConfig) -> CompareResult:
    """Train (or load from ``cfg.from_dir``) each model, score it, write the table, JSON, figures.

    Runs inside :func:`probgen.runs.run_folder`: a second compare on the same ``--out`` refuses while this
    one writes, a finished compare is replaced only with ``run.force``, and a compare killed half-way
    leaves no manifest (``compare.manifest.json`` is written last).
    """
    from ..runs import run_folder
    from .guard import check_sizes

    check_sizes(cfg)
    out = out_dir(cfg.run.out)
    outputs, results = _files(cfg, out)
    # the results of the run this one replaces go before anything new is written: a compare killed half-way
    # leaves new checkpoints and no manifest, never the old results.json / pointwise.npz beside them
    with run_folder(out, name="compare", command="compare", force=cfg.run.force, outputs=outputs, stale=results):
        return _compare(cfg)


def _files(cfg: CompareConfig, out: Path) -> tuple[list[Path], list[Path]]:
    """``(every file compare writes into out, its results)``: the results are the table's numbers and
    figures (results.json, pointwise.npz, figures, sample grids); the rest are the checkpoints it trains."""
    from ..io import run_files
    from .story import story_label, story_stem

    models = _names(cfg.models)
    stories = [story_stem(story_label(cfg.story, cfg.story_name))] if cfg.story else []
    results = [out / f for f in ("results.json", "pointwise.npz", "compare.png", "elpd_compare.png")]
    results += [out / f"samples_{name}.png" for name in models + stories]
    trained = ([] if cfg.from_dir else models) + stories  # --from: read where they are; a story always trains
    return results + [run_files(out, name).checkpoint for name in trained], results


def _compare(cfg: CompareConfig) -> CompareResult:
    from ..evaluate import summarize
    from ..io import atomic_write, run_files, write_json
    from ..models import load
    from .published import published

    names = _names(cfg.models)
    if cfg.num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {cfg.num_samples}")
    run = cfg.run
    device = resolve_device(run.device)  # before the first line of the run: the device line is it
    say = (lambda *a, **k: None) if run.quiet else print
    seed_everything(run.seed)
    ds = load_data(_family_data(cfg.data, names, say))
    out = out_dir(run.out)
    density = not ds.binarized
    rows, pointwise = [], {}
    for name in names:
        if cfg.from_dir:  # read where it is: the run records the path, nothing is copied or rewritten
            ckpt = run_files(cfg.from_dir, name).checkpoint
            model = load(ckpt, device=device)
            if model.kind != name and model.kind in MODELS:  # e.g. a GMM saved as vae.pt
                raise ValueError(f"--from {ckpt}: holds a {model.kind!r} model, not {name!r}")
            fit_seconds = float(checkpoint_extra(ckpt).get("fit_seconds", float("nan")))
        else:
            seed_everything(run.seed)
            say(f"training {name} ...", flush=True)
            ckpt = run_files(out, name).checkpoint
            res = train_model(name, _trainer_params(name, cfg.epochs, cfg.log_dir), cfg.data, run, ds, path=ckpt)
            model, fit_seconds = res.model, float(res.model.train_result.seconds)  # as its checkpoint records
        fit_device = checkpoint_extra(ckpt).get("device")  # where it trained ("cpu (1 thread)"), as its file says
        refit = refit_for_scoring(model, ds, epochs=cfg.refit_guide, k=cfg.refit_k, seed=run.seed,
                                  progress=not run.quiet, say=say) if cfg.refit_guide else None
        seed_everything(run.seed)
        row = score_model(model, ds, num_samples=cfg.num_samples, seed=run.seed, refine=cfg.refine)
        if refit is not None:
            row["guide_refit"] = refit
        values = row.pop("values")
        s = summarize(values)
        pointwise[name] = values.numpy()
        if cfg.log_dir is not None:  # the final test score beside the training curves
            from ..infer.tensorboard import log_score

            log_score(Path(cfg.log_dir) / name, {"log_likelihood": s.mean, "stderr": s.stderr,
                                                 "num_samples": row["num_samples"], "estimator": row["estimator"]})
        rows.append({"name": name, "test_log_likelihood": s.mean, "stderr": s.stderr, **row,
                     "fit_seconds": fit_seconds, "fit_device": fit_device, "n_params": int(model.n_params()),
                     "n_test": s.n, "checkpoint": str(ckpt)})
        _sample_grid(model, out / f"samples_{name}.png")
    if cfg.story:  # the user's own program: trained as `probgen train --story` would, scored the same way
        rows.append(_story_row(cfg, ds, out, pointwise, say))
    result = {"data": {"name": ds.name, "n_test": len(ds.test), "shape": list(ds.shape),
                       "binarized": ds.binarized, "dequantized": ds.dequantized,
                       "unit": "nats per image", "quantity": "log density" if density else "log mass"},
              "seed": run.seed, "models": rows}
    if published(ds.name):
        result["published"] = [entry.as_dict() for entry in published(ds.name)]
    import numpy as np

    atomic_write(out / "pointwise.npz", lambda f: np.savez(f, **pointwise))
    elpd_text = None
    if len(pointwise) > 1 and not cfg.no_diagnostics:
        result["elpd"], elpd_text = _elpd(pointwise, out)
    result = with_device(result, device)
    write_json(out / "results.json", result)
    _bar_figure(rows, out / "compare.png", density)
    return CompareResult(rows, out / "results.json", out, result, ds, elpd_text)


def _elpd(pointwise: dict, out: Path) -> tuple[dict | None, str | None]:
    """ArviZ elpd comparison of the held-out pointwise log-likelihoods: (table, printable text)."""
    try:
        from .. import diagnostics
    except ImportError:
        return None, None
    if not hasattr(diagnostics, "compare_pointwise"):
        return None, None
    table = dict(diagnostics.compare_pointwise(pointwise, figure=out / "elpd_compare.png"))
    text = table.pop("text", "")
    return table, text


def _sample_grid(model, path: Path) -> None:
    """64 samples as a grid (decoder means where the model has them); none for text or a model that cannot
    draw unconditionally."""
    import torch

    if "text" in model.traits.offers:
        return
    kwargs = {"mean": True} if "sample_mean" in model.traits.offers else {}  # decoder means: pictures, not noise
    try:
        with torch.no_grad():
            x = model.sample(64, **kwargs)
    except (NotImplementedError, TypeError):
        return
    if not isinstance(x, torch.Tensor) or x.dim() == 2:
        return
    save_images(x.cpu(), path, nrow=8)


def _bar_figure(rows, path: Path, density: bool) -> None:
    from ..plots import new_figure, savefig

    fig, ax = new_figure(figsize=(5, 3))
    names = [r["name"] for r in rows]
    ax.barh(names, [r["test_log_likelihood"] for r in rows],
            xerr=[2 * r["stderr"] for r in rows], color="tab:blue")
    ax.set_xlabel(("log density" if density else "log-likelihood") + " (nats/image, ±2 s.e.)")
    ax.set_title("test log-likelihood, higher is better")
    savefig(fig, path)

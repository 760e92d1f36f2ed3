"""The ``diagnose`` recipe: is the guide good enough, and how far is it from the true posterior?

Writes into ``run.out``: ``diagnostics.nc`` (ArviZ InferenceData of the guide's draws),
``summary.json`` (k̂ counts, ESS, IWAE gap, NUTS r-hat/ESS, guide-vs-NUTS distances),
``khat.png``, and per NUTS point ``nuts_<i>.nc``, ``guide_vs_nuts_<i>.png``, ``trace_<i>.png``.
For a GMM (no guide: the assignment is enumerated) it reports the exact responsibilities.
The data is the checkpoint's own (``payload["data"]``) unless ``data`` is given.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig, RunConfig, opt, out_dir, resolve_device, runs_in, seed_everything, write_npy
from .models import load_checkpoint_data

__all__ = ["DiagnoseConfig", "DiagnoseResult", "diagnose"]


@dataclass
class DiagnoseConfig:
    """``probgen diagnose CKPT``: which points, how many draws, which points get NUTS."""

    checkpoint: str = opt("", "a .pt file written by probgen (vae, gmm, ...)")
    points: int | None = opt(None, "use the first N test points (default: all)")
    num_samples: int = opt(1000, "importance samples K per point for k̂ and ESS")
    draws: int = opt(100, "guide draws per point stored in diagnostics.nc")
    nuts: list = opt(None, "test points (0-based, among the chosen ones) to sample by NUTS (give --nuts with no "
                           "index to skip)", nargs="*", metavar="INDEX", default_factory=lambda: [0])
    chains: int = opt(4, "NUTS chains")
    nuts_samples: int = opt(500, "NUTS draws per chain")
    nuts_warmup: int = opt(300, "NUTS warm-up steps per chain")
    story: str = opt("", "the checkpoint holds your own story: its FILE.py:NAME (runs that file's code)")
    data: DataConfig | None = None  # default: the data the checkpoint was trained on
    run: RunConfig = runs_in("runs/diagnose")


@dataclass
class DiagnoseResult:
    summary: dict
    out: Path
    lines: list = field(default_factory=list)  # what a caller prints


def _check(cfg: DiagnoseConfig) -> None:
    if cfg.points is not None and cfg.points < 1:
        raise ValueError(f"--points must be >= 1, got {cfg.points}")
    if cfg.num_samples < 2:
        raise ValueError(f"--num-samples must be >= 2, got {cfg.num_samples}")
    if cfg.draws < 1:
        raise ValueError(f"--draws must be >= 1, got {cfg.draws}")
    if cfg.chains < 1 or cfg.nuts_samples < 2 or cfg.nuts_warmup < 0:
        raise ValueError("--chains >= 1, --nuts-samples >= 2 and --nuts-warmup >= 0 are required")
    from .guard import check_sizes, claim

    check_sizes(cfg)  # upper bounds: the importance weights held in memory, NUTS draws
    claim(cfg)  # nothing in --out replaced without --force


def _holds_user_story(path: Path) -> bool:
    from ..io import load_checkpoint
    from .story import recorded_code

    return any(part is not None for part in recorded_code(load_checkpoint(path)))


def _fmt(v, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def diagnose(cfg: DiagnoseConfig) -> DiagnoseResult:
    """k̂ of the guide on test points, NUTS against the guide on chosen points, ArviZ files."""
    from ..models import load

    _check(cfg)
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    seed_everything(cfg.run.seed)
    if cfg.story or _holds_user_story(path):  # a user's program: its code only when named
        from .story import load_story_checkpoint

        model = load_story_checkpoint(path, allow_code=bool(cfg.story), story=cfg.story or None,
                                      device=str(resolve_device(cfg.run.device)))
    else:
        model = load(path, device=str(resolve_device(cfg.run.device)))
    from .guard import check_kind

    check_kind("diagnose", model, path)  # its own traits: a guide, or exact responsibilities
    model.eval()
    ds = load_checkpoint_data(path, cfg.data, seed=cfg.run.seed)
    x = ds.test if cfg.points is None else ds.test[:cfg.points]
    y = None
    if model.traits.labels:  # the CVAE: diagnosed conditional on the test labels
        if ds.test_labels is None:
            raise ValueError(f"{ds.name}: a {model.kind} is diagnosed conditional on labels, and the data has none")
        y = ds.test_labels[:len(x)]
    out = out_dir(cfg.run.out)
    x, y = model.prepare(x, y)  # one-line ValueError if the data does not fit the model
    summary: dict = {"checkpoint": str(path), "model": model.kind, "data": ds.describe(),
                     "points": int(len(x)), "seed": cfg.run.seed}
    lines = [f"diagnose {model.kind} from {path} on {len(x)} test points of {ds.describe()}"]
    if "responsibilities" in model.traits.offers and model.traits.exact:
        _responsibilities(model, x, out, summary, lines)
    else:
        if y is not None:
            summary["conditional_on"] = "test labels"
            lines.append("conditional on the test labels: q(z | x, y) against p(z | x, y)")
        _guide_and_nuts(model, x, cfg, out, summary, lines, y=y)
    return DiagnoseResult(summary, out, lines)


def _responsibilities(model, x, out: Path, summary: dict, lines: list) -> None:
    import numpy as np

    from .. import diagnostics as D
    from ..io import write_json
    from ..plots import diagnostics as P

    gm = D.gmm_responsibilities(model, x, index=np.arange(len(x)))
    summary["responsibilities"] = gm["summary"]
    summary["log_likelihood_mean"] = float(model.log_prob(x).mean())
    write_npy(out / "responsibilities.npy", gm["resp"])
    P.plot_responsibilities(gm["resp"], out / "responsibilities.png")
    write_json(out / "summary.json", summary)
    s = gm["summary"]
    lines.append(f"exact posterior p(m|x) by enumeration: mean entropy {s['mean_entropy']:.3f} nats "
                 f"(max {s['max_entropy']:.3f}); {100 * s['fraction_confident']:.1f}% of points have p(m|x) > 0.99")
    lines.append(f"no guide to check (the assignment is summed out exactly); wrote {out}/summary.json, "
                 "responsibilities.png/.npy")


def _guide_and_nuts(model, x, cfg: DiagnoseConfig, out: Path, summary: dict, lines: list, y=None) -> None:
    import numpy as np

    from .. import diagnostics as D
    from ..io import write_json
    from ..plots import diagnostics as P

    index = np.arange(len(x))
    bad = [i for i in cfg.nuts if not 0 <= i < len(x)]
    if bad:
        raise ValueError(f"--nuts {bad[0]}: out of range for {len(x)} points (0..{len(x) - 1})")
    say = (lambda *a, **k: None) if cfg.run.quiet else print
    t0 = time.perf_counter()
    q = D.guide_quality(model, x, cfg.num_samples, y=y, index=index)
    summary["guide_quality"] = q.summary()
    summary["guide_quality"]["seconds"] = round(time.perf_counter() - t0, 2)
    np.savez(out / "pointwise.npz", khat=q.khat, ess=q.ess, iwae=q.iwae, elbo=q.elbo)
    P.plot_khat(q.khat, out / "khat.png", title=f"{model.kind}: Pareto k̂ of q(z|x) as proposal, "
                                                 f"K={cfg.num_samples}")
    lines.append(q.table())
    idata = D.to_inference_data(model, x, num_samples=cfg.draws, y=y, index=index)
    D.save_inference_data(idata, out / "diagnostics.nc")
    summary["inference_data"] = {"file": "diagnostics.nc", "groups": D._az_groups(idata), "draws": cfg.draws}
    runs = []
    for i in cfg.nuts:
        say(f"NUTS on point {i}: {cfg.chains} chains × ({cfg.nuts_warmup} warm-up + {cfg.nuts_samples}) ...",
            flush=True)
        res = D.nuts_posterior(model, x[i], num_chains=cfg.chains, num_samples=cfg.nuts_samples,
                               warmup_steps=cfg.nuts_warmup, seed=cfg.run.seed, index=int(i),
                               y=None if y is None else y[i:i + 1])
        D.save_inference_data(res.idata, out / f"nuts_{i}.nc")
        s = res.summary()
        s["khat"] = float(q.khat[i])
        runs.append(s)
        rhat = "n/a (1 chain)" if s["rhat_max"] is None else f"{s['rhat_max']:.3f}"
        P.plot_guide_vs_nuts(res.samples, res.guide_samples, out / f"guide_vs_nuts_{i}.png",
                             wasserstein=res.wasserstein, title=f"point {i}: guide vs NUTS (k̂ = {q.khat[i]:.2f})")
        P.plot_trace(res.samples, out / f"trace_{i}.png", names=[f"z[{j}]" for j in range(res.samples.shape[2])],
                     title=f"NUTS on point {i}: r-hat max {rhat}", max_vars=10)
        lines.append(f"  point {i}: r-hat max {rhat}, ESS bulk min {s['ess_bulk_min']:.0f}, "
                     f"tail min {s['ess_tail_min']:.0f}, divergences {s['divergences']}; guide vs NUTS W1 mean "
                     f"{s['wasserstein_mean']:.3f} ({_fmt(s['wasserstein_std_mean'])} NUTS sd; noise floor "
                     f"{s['noise_floor_mean']:.3f}), k̂ {q.khat[i]:.2f}, {s['seconds']:.0f} s")
        if s["divergences"] or (s["rhat_max"] or 1.0) > 1.01:
            lines.append(f"  warning: point {i} has {s['divergences']} divergent transitions and r-hat {rhat}; "
                         "the NUTS draws are not trustworthy: raise --nuts-warmup / --nuts-samples")
    summary["nuts"] = runs
    if runs:
        rhats = [r["rhat_max"] for r in runs if r["rhat_max"] is not None]
        summary["nuts_rhat_max"] = max(rhats) if rhats else None
        summary["wasserstein_mean"] = float(np.mean([r["wasserstein_mean"] for r in runs]))
    write_json(out / "summary.json", summary)
    lines.append(f"wrote {out}/summary.json, diagnostics.nc, khat.png"
                 + (", nuts_*.nc, guide_vs_nuts_*.png, trace_*.png" if runs else ""))

"""The ``diagnose`` recipe: is the guide good enough, and how far is it from the true posterior?

Writes into ``run.out``: ``diagnostics.nc`` (ArviZ InferenceData of the guide's draws with log p(x, z)
and log q(z | x) per draw), ``summary.json`` (k̂ counts, ESS, IWAE gap, SBC and collapse numbers, NUTS
r-hat/ESS, guide-vs-NUTS distances), ``khat.png``, ``sbc.png`` (rank histograms: is the encoder
calibrated?), ``collapse.png`` (active units, KL per dimension), and per NUTS point ``nuts_<i>.nc``,
``guide_vs_nuts_<i>.png``, ``trace_<i>.png``.
For a GMM (no guide: the assignment is enumerated) it reports the exact responsibilities.
The data is the checkpoint's own (``payload["data"]``) unless ``data`` is given.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import (DataConfig, RunConfig, opt, out_dir, resolve_device, runs_in, seed_everything, with_device,
                     write_npy)
from .models import load_checkpoint_data

__all__ = ["DiagnoseConfig", "DiagnoseResult", "diagnose"]


@dataclass
class DiagnoseConfig:
    """``probgen diagnose CKPT``: which points, how many draws, which points get NUTS."""

    checkpoint: str = opt("", "a .pt file written by probgen (vae, gmm, ...)")
    points: int | None = opt(None, "use the first N test points (default: all)")
    num_samples: int = opt(1000, "importance samples K per point for k̂ and ESS")
    draws: int = opt(100, "guide draws per point stored in diagnostics.nc")
    sbc: int = opt(1000, "simulations (z ~ p(z), x ~ p(x|z)) for the calibration of the guide (0: skip)")
    sbc_draws: int = opt(99, "draws of q(z|x) per simulation: ranks 0..L")
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
    if cfg.sbc < 0 or cfg.sbc == 1 or cfg.sbc_draws < 1:
        raise ValueError(f"--sbc must be 0 (skip) or >= 2 and --sbc-draws >= 1, got {cfg.sbc} and {cfg.sbc_draws}")
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
    from ..evaluate import prepared
    from ..models import load

    _check(cfg)
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    seed_everything(cfg.run.seed)
    device = resolve_device(cfg.run.device)
    if cfg.story or _holds_user_story(path):  # a user's program: its code only when named
        from .story import load_story_checkpoint

        model = load_story_checkpoint(path, allow_code=bool(cfg.story), story=cfg.story or None, device=str(device))
    else:
        model = load(path, device=str(device))
    from .guard import check_kind

    check_kind("diagnose", model, path)  # its own traits: a guide, or exact responsibilities
    model.eval()
    if "text" in model.traits.offers:  # its data are sentences, which this command does not load yet
        raise ValueError(f"{path}: diagnose reads image data; a text model's collapse numbers are in the tour's "
                         "text section, or from Python: probgen.diagnostics.collapse(model, model.tokens(lines))")
    ds = load_checkpoint_data(path, cfg.data, seed=cfg.run.seed)
    x = ds.test if cfg.points is None else ds.test[:cfg.points]
    y = None
    if model.traits.labels:  # the CVAE: diagnosed conditional on the test labels
        if ds.test_labels is None:
            raise ValueError(f"{ds.name}: a {model.kind} is diagnosed conditional on labels, and the data has none")
        y = ds.test_labels[:len(x)]
    out = out_dir(cfg.run.out)
    x, y = prepared(model, x, y)  # on the model's device; one-line ValueError if the data does not fit it
    summary: dict = with_device({"checkpoint": str(path), "model": model.kind, "data": ds.describe(),
                                 "points": int(len(x)), "seed": cfg.run.seed}, device)
    lines = [f"diagnose {model.kind} from {path} on {len(x)} test points of {ds.describe()}"]
    plan = _plan(model, x, y)  # a user's story: exact when all its per-example latents are enumerated; globals
    if plan is not None and plan.note:
        summary["global_latents"] = plan.note
        lines.append(plan.note)
        if cfg.nuts:  # NUTS samples one point's latents: the shared global draw is no part of them
            lines.append("NUTS per point skipped: the global sites are shared by all points, p(z | x_i) alone "
                         "does not hold them")
            cfg = replace(cfg, nuts=[])
    if "responsibilities" in model.traits.offers and model.traits.exact:
        _responsibilities(model, x, out, summary, lines)
    elif plan is not None and plan.exact:
        _exact(model, x, y, plan, out, summary, lines)
    else:
        if y is not None:
            summary["conditional_on"] = "test labels"
            lines.append("conditional on the test labels: q(z | x, y) against p(z | x, y)")
        _guide_and_nuts(model, x, cfg, out, summary, lines, y=y)
    return DiagnoseResult(summary, out, lines)


def _plan(model, x, y):
    """What the scores of a story scored with its guide are (:func:`probgen.importance.scoring_plan`), else None."""
    from ..evaluate import scores_with_guide
    from ..importance import scoring_plan

    return scoring_plan(model, x, y) if scores_with_guide(model) else None


def _exact(model, x, y, plan, out: Path, summary: dict, lines: list) -> None:
    """A story whose guide draws nothing per example: its log p(x) is exact, no importance weights to judge."""
    from ..evaluate import log_likelihood
    from ..io import write_json

    ll = float(log_likelihood(model, x, y=y).mean())
    summary.update(estimator=plan.estimator, log_likelihood_mean=ll)
    write_json(out / "summary.json", summary)
    lines.append(f"no guide to check: the per-example latents {', '.join(map(repr, plan.enumerated)) or '(none)'} are "
                 f"summed out exactly ({plan.estimator}: {ll:.2f} nats/point); wrote {out}/summary.json")


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
    P.plot_khat(q.khat, out / "khat.png", levels=tuple(hi for _, hi, _ in D.KHAT_BINS[:-1]),
                title=f"{model.kind}: Pareto k̂ of q(z|x) as proposal, K={cfg.num_samples}")
    lines.append(q.table())
    idata = D.to_inference_data(model, x, num_samples=cfg.draws, y=y, index=index)
    D.save_inference_data(idata, out / "diagnostics.nc")
    per_draw = {"sample_stats.lp": "log p(x, z)", "sample_stats.lp_approx": "log q(z | x)",
                "sample_stats.log_weight": "lp - lp_approx"}
    summary["inference_data"] = {"file": "diagnostics.nc", "groups": D._az_groups(idata), "draws": cfg.draws,
                                 "per_draw": per_draw}
    encoder_checks(model, x, cfg, out, summary, lines, y=y)
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
        failed = _nuts_failed(s)
        if failed:
            lines.append(f"  warning: point {i}: {' and '.join(failed)}; the NUTS draws are not trustworthy: "
                         "raise --nuts-warmup / --nuts-samples")
    summary["nuts"] = runs
    if runs:
        rhats = [r["rhat_max"] for r in runs if r["rhat_max"] is not None]
        summary["nuts_rhat_max"] = max(rhats) if rhats else None
        summary["wasserstein_mean"] = float(np.mean([r["wasserstein_mean"] for r in runs]))
    write_json(out / "summary.json", summary)
    figures = "".join(f", {f}" for f in ("sbc.png", "collapse.png") if (out / f).is_file())
    lines.append(f"wrote {out}/summary.json, diagnostics.nc, khat.png{figures}"
                 + (", nuts_*.nc, guide_vs_nuts_*.png, trace_*.png" if runs else ""))


#: r-hat above which NUTS chains have not mixed (Vehtari et al. 2021)
RHAT_MAX = 1.01


def _nuts_failed(s: dict) -> list[str]:
    """The criteria one NUTS run fails, each named with its number (empty: none)."""
    failed = []
    if s["divergences"]:
        failed.append(f"{s['divergences']} divergent transition{'s' if s['divergences'] != 1 else ''}")
    if s["rhat_max"] is not None and s["rhat_max"] > RHAT_MAX:
        failed.append(f"r-hat {s['rhat_max']:.3f} > {RHAT_MAX} (the chains disagree)")
    return failed


def encoder_checks(model, x, cfg, out: Path, summary: dict, lines: list, *, y=None) -> None:
    """Is the encoder right? SBC of the guide (``cfg.sbc`` simulations; skipped with one line when the
    model cannot be simulated) and its collapse numbers, into ``summary`` and ``sbc.png`` / ``collapse.png``."""
    from .. import diagnostics as D
    from ..plots import diagnostics as P

    if not model.traits.guide:
        return
    if cfg.sbc:
        try:
            cal = D.sbc(model, x, y, simulations=cfg.sbc, draws=cfg.sbc_draws)
        except D.NotSimulable as e:
            summary["calibration"] = {"skipped": str(e)}
            lines.append(f"calibration (SBC): not run: {e}")
        else:
            summary["calibration"] = cal.summary()
            P.plot_sbc(cal.counts(), out / "sbc.png", labels=cal.labels, band=cal.band(), p_values=cal.p_values,
                       verdicts=cal.dim_verdicts(), ecdf=cal.ecdf(),
                       title=f"{model.kind}: is q(z|x) calibrated? {cal.n} simulations, ranks among "
                             f"{cal.draws} draws (grey: 99% band of a uniform bin)")
            lines.append(f"calibration (SBC, {cal.n} simulations × {cal.draws} draws): {cal.verdict()}")
    col = D.collapse(model, x, y)
    summary["collapse"] = col.summary()
    P.plot_collapse(col.labels, col.mean_variance, out / "collapse.png", kl=col.kl, threshold=col.threshold,
                    title=f"{model.kind} on {len(x)} test points: "
                          f"{int(col.active.sum())} of {len(col.labels)} units active")
    lines.append(f"collapse: {col.verdict()}")

"""``probgen diagnose CKPT``: is the guide good enough, and how far is it from the true posterior?

Writes into ``--out``: ``diagnostics.nc`` (ArviZ InferenceData of the guide's draws),
``summary.json`` (k̂ counts, ESS, IWAE gap, NUTS r-hat/ESS, guide-vs-NUTS distances),
``khat.png``, and per NUTS point ``nuts_<i>.nc``, ``guide_vs_nuts_<i>.png``, ``trace_<i>.png``.
For a GMM (no guide: the assignment is enumerated) it reports the exact responsibilities.
"""
from __future__ import annotations

import time
from pathlib import Path

from . import common
from .common import CLIError, add_data_args, add_run_args

__all__ = ["register", "cmd_diagnose"]


def register(sub) -> None:
    p = sub.add_parser(
        "diagnose", help="PSIS k̂ of the guide, NUTS vs guide on chosen points, ArviZ files",
        description="Posterior diagnostics of a trained model on test points: Pareto k̂ of the guide's "
                    "importance weights (k̂ > 0.7: its IWAE log-likelihood is unreliable), NUTS on the "
                    "codes of chosen points with the decoder fixed (r-hat, ESS, guide-vs-NUTS distance), "
                    "an ArviZ netCDF file and figures.")
    p.add_argument("checkpoint", help="a .pt file written by probgen (vae, gmm, ...)")
    add_data_args(p)
    add_run_args(p, out="runs/diagnose")
    p.add_argument("--points", type=int, default=None,
                   help="use the first N test points (default: all)")
    p.add_argument("--num-samples", type=int, default=1000,
                   help="importance samples K per point for k̂ and ESS (default: 1000)")
    p.add_argument("--draws", type=int, default=100,
                   help="guide draws per point stored in diagnostics.nc (default: 100)")
    p.add_argument("--nuts", type=int, nargs="*", default=[0], metavar="INDEX",
                   help="test points (0-based, among the chosen ones) to sample by NUTS "
                        "(default: 0; give --nuts with no index to skip)")
    p.add_argument("--chains", type=int, default=4, help="NUTS chains (default: 4)")
    p.add_argument("--nuts-samples", type=int, default=500, help="NUTS draws per chain (default: 500)")
    p.add_argument("--nuts-warmup", type=int, default=300, help="NUTS warm-up steps per chain (default: 300)")
    p.set_defaults(func=cmd_diagnose)


def _check(args) -> None:
    if args.points is not None and args.points < 1:
        raise CLIError(f"--points must be >= 1, got {args.points}")
    if args.num_samples < 2:
        raise CLIError(f"--num-samples must be >= 2, got {args.num_samples}")
    if args.draws < 1:
        raise CLIError(f"--draws must be >= 1, got {args.draws}")
    if args.chains < 1 or args.nuts_samples < 2 or args.nuts_warmup < 0:
        raise CLIError("--chains >= 1, --nuts-samples >= 2 and --nuts-warmup >= 0 are required")


def _fmt(v, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def cmd_diagnose(args) -> int:
    import numpy as np

    from .. import diagnostics as D
    from ..io import write_json
    from ..plots import diagnostics as P

    _check(args)
    path = Path(args.checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    common.seed_everything(args.seed)
    model = common.load_model(path, device=str(common.resolve_device(args.device)))
    model.eval()
    ds = common.load_dataset(args)
    x = ds.test if args.points is None else ds.test[:args.points]
    index = np.arange(len(x))
    out = common.out_dir(args)
    x, _ = model.prepare(x)  # one-line ValueError if the data does not fit the model
    summary: dict = {"checkpoint": str(path), "model": model.kind, "data": ds.describe(),
                     "points": int(len(x)), "seed": args.seed}
    say = (lambda *a, **k: None) if args.quiet else print
    print(f"diagnose {model.kind} from {path} on {len(x)} test points of {ds.describe()}")

    if hasattr(model, "responsibilities") and getattr(model, "has_exact_log_prob", False):
        gm = D.gmm_responsibilities(model, x, index=index)
        summary["responsibilities"] = gm["summary"]
        summary["log_likelihood_mean"] = float(model.log_prob(x).mean())
        np.save(out / "responsibilities.npy", gm["resp"])
        P.plot_responsibilities(gm["resp"], out / "responsibilities.png")
        write_json(out / "summary.json", summary)
        s = gm["summary"]
        print(f"exact posterior p(m|x) by enumeration: mean entropy {s['mean_entropy']:.3f} nats "
              f"(max {s['max_entropy']:.3f}); {100 * s['fraction_confident']:.1f}% of points have p(m|x) > 0.99")
        print(f"no guide to check (the assignment is summed out exactly); wrote {out}/summary.json, "
              "responsibilities.png/.npy")
        return 0

    bad = [i for i in args.nuts if not 0 <= i < len(x)]
    if bad:
        raise CLIError(f"--nuts {bad[0]}: out of range for {len(x)} points (0..{len(x) - 1})")
    t0 = time.perf_counter()
    q = D.guide_quality(model, x, args.num_samples, index=index)
    summary["guide_quality"] = q.summary()
    summary["guide_quality"]["seconds"] = round(time.perf_counter() - t0, 2)
    np.savez(out / "pointwise.npz", khat=q.khat, ess=q.ess, iwae=q.iwae, elbo=q.elbo)
    P.plot_khat(q.khat, out / "khat.png", title=f"{model.kind}: Pareto k̂ of q(z|x) as proposal, "
                                                 f"K={args.num_samples}")
    print(q.table())

    idata = D.to_inference_data(model, x, num_samples=args.draws, index=index)
    D.save_inference_data(idata, out / "diagnostics.nc")
    summary["inference_data"] = {"file": "diagnostics.nc", "groups": D._az_groups(idata),
                                 "draws": args.draws}

    runs = []
    for i in args.nuts:
        say(f"NUTS on point {i}: {args.chains} chains × ({args.nuts_warmup} warm-up + "
            f"{args.nuts_samples}) ...", flush=True)
        res = D.nuts_posterior(model, x[i], num_chains=args.chains, num_samples=args.nuts_samples,
                               warmup_steps=args.nuts_warmup, seed=args.seed, index=int(i))
        D.save_inference_data(res.idata, out / f"nuts_{i}.nc")
        s = res.summary()
        s["khat"] = float(q.khat[i])
        runs.append(s)
        rhat = "n/a (1 chain)" if s["rhat_max"] is None else f"{s['rhat_max']:.3f}"
        P.plot_guide_vs_nuts(res.samples, res.guide_samples, out / f"guide_vs_nuts_{i}.png",
                             wasserstein=res.wasserstein,
                             title=f"point {i}: guide vs NUTS (k̂ = {q.khat[i]:.2f})")
        P.plot_trace(res.samples, out / f"trace_{i}.png", names=[f"z[{j}]" for j in range(res.samples.shape[2])],
                     title=f"NUTS on point {i}: r-hat max {rhat}", max_vars=10)
        print(f"  point {i}: r-hat max {rhat}, ESS bulk min {s['ess_bulk_min']:.0f}, "
              f"tail min {s['ess_tail_min']:.0f}, divergences {s['divergences']}; guide vs NUTS W1 mean "
              f"{s['wasserstein_mean']:.3f} ({_fmt(s['wasserstein_std_mean'])} NUTS sd; noise floor "
              f"{s['noise_floor_mean']:.3f}), k̂ {q.khat[i]:.2f}, {s['seconds']:.0f} s")
        if s["divergences"] or (s["rhat_max"] or 1.0) > 1.01:
            print(f"  warning: point {i} has {s['divergences']} divergent transitions and r-hat {rhat}; "
                  "the NUTS draws are not trustworthy: raise --nuts-warmup / --nuts-samples")
    summary["nuts"] = runs
    if runs:
        rhats = [r["rhat_max"] for r in runs if r["rhat_max"] is not None]
        summary["nuts_rhat_max"] = max(rhats) if rhats else None
        summary["wasserstein_mean"] = float(np.mean([r["wasserstein_mean"] for r in runs]))
    write_json(out / "summary.json", summary)
    print(f"wrote {out}/summary.json, diagnostics.nc, khat.png"
          + (", nuts_*.nc, guide_vs_nuts_*.png, trace_*.png" if runs else ""))
    return 0

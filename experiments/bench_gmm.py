"""probgen's GMM against scikit-learn's GaussianMixture: the defaults a user gets, same data, same K.

The user's call, ``GMM(K, covariance=cov).fit(x, seed=s)`` on the built-in digits as
``probgen.data.load("digits")`` gives them (float32 grey levels in [0, 1]: 1,297 training and 250 test
images), against ``GaussianMixture(K, covariance_type=cov, random_state=s)`` with scikit-learn's defaults
(reg_covar 1e-6, tol 1e-3, max_iter 100, n_init 1, k-means start) on the same values in float64. Seeds
0..R-1; the two libraries alternate seed by seed in one process, after a warm-up; threads as the user has
them (``--threads`` to set both), each fit after ``--pause`` idle seconds (0.2: the BLAS threads the other
library woke have stopped spinning). Printed per cell: median wall seconds of a fit, the time ratio probgen /
scikit-learn, and the held-out gap (probgen − scikit-learn, mean ± sd over the seeds, nats per image).

The ``n_init`` rows: B k-means starts, ``GMM.fit(n_init=B)`` runs them as one batch on the device (a plate
of B mixtures) against ``GaussianMixture(n_init=B)``, which runs them one after another on the CPU.

    python experiments/bench_gmm.py                      # diag and full, K = 10, 50; n_init 1 and 10; device auto
    python experiments/bench_gmm.py --device cuda        # probgen on the GPU (scikit-learn on the CPU)
    python experiments/bench_gmm.py --quick              # smoke test: K = 10 diag, one seed, n_init 1 and 2
    python experiments/bench_gmm.py --reg-covar 1e-3 --ks 10,50,200 --threads 1   # the earlier settings
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from probgen.data import load
from probgen.io import write_json
from probgen.models import GMM
from probgen.recipes.config import describe_device, resolve_device


def _timed(fit, device: torch.device, pause: float) -> tuple[float, object]:
    """Wall seconds of ``fit()`` (the device drained before and after), after ``pause`` seconds idle: OpenBLAS's
    threads busy-wait ~0.1 s after their last call, and would slow whichever library ran next."""
    time.sleep(pause)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fit()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def bench(ds, k: int, cov: str, seeds: int, reg: float, n_init: int, device: torch.device, pause: float = 0.0) -> dict:
    """One cell: ``seeds`` fits of each library, alternated; the user's defaults on both sides."""
    from sklearn.mixture import GaussianMixture

    xtr, xte = ds.train.to(device), ds.test.to(device)  # float32 [n, 8, 8], as load() gives them
    xtr_np = ds.train.reshape(len(ds.train), -1).double().numpy()
    xte_np = ds.test.reshape(len(ds.test), -1).double().numpy()
    sk_t, pg_t, gaps, iters = [], [], [], []
    for s in range(seeds):
        t, sk = _timed(lambda: GaussianMixture(k, covariance_type=cov, reg_covar=reg, random_state=s,
                                               n_init=n_init).fit(xtr_np), torch.device("cpu"), pause)
        sk_t.append(t)
        t, pg = _timed(lambda: GMM(k, covariance=cov, reg_covar=reg).fit(xtr, seed=s, n_init=n_init,
                                                                         progress=False), device, pause)
        pg_t.append(t)
        gaps.append(float(pg.log_prob(xte).double().mean()) - float(sk.score(xte_np)))
        iters.append((int(sk.n_iter_), len(pg.em_history)))
    sk_s, pg_s = statistics.median(sk_t), statistics.median(pg_t)
    return {
        "K": k, "covariance": cov, "n_init": n_init, "seeds": seeds, "device": str(device), "pause": pause,
        "sklearn_fit_seconds": sk_s, "probgen_fit_seconds": pg_s, "time_ratio": pg_s / sk_s,
        "loglik_gap": statistics.mean(gaps), "loglik_gap_sd": statistics.stdev(gaps) if seeds > 1 else 0.0,
        "loglik_gaps": gaps, "iterations_sklearn_probgen": iters, "sklearn_seconds": sk_t, "probgen_seconds": pg_t,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="K=10 diag, one seed, n_init 1 and 2 (smoke test)")
    p.add_argument("--repeats", type=int, default=5, help="seeds per cell (n_init rows: at most 3)")
    p.add_argument("--ks", default="10,50", help="numbers of components, comma-separated")
    p.add_argument("--covariances", default="diag,full", help="comma-separated: diag, full")
    p.add_argument("--n-init", type=int, default=10, help="starts of the batched rows (1: none)")
    p.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda (probgen's side)")
    p.add_argument("--threads", type=int, default=None, help="torch and BLAS threads (default: as they are)")
    p.add_argument("--reg-covar", type=float, default=1e-6, help="added to variances by both (scikit-learn's default)")
    p.add_argument("--pause", type=float, default=0.2,
                   help="idle seconds before each fit (0: back to back, each pays the other's spinning BLAS threads)")
    p.add_argument("--out", default="runs/bench_gmm.json")
    args = p.parse_args(argv)
    try:
        ks, covs = [int(k) for k in args.ks.split(",")], args.covariances.split(",")
    except ValueError:
        p.error(f"--ks: comma-separated numbers of components, got {args.ks!r}")
    if min(ks) < 1 or args.repeats < 1 or args.n_init < 1 or not set(covs) <= {"diag", "full"}:
        p.error("--ks, --repeats and --n-init must be >= 1, --covariances diag and/or full")
    if args.quick:
        ks, covs, args.repeats, args.n_init, args.pause = [10], ["diag"], 1, 2, 0.0
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        p.error(str(e))  # one line, exit 2 (e.g. --device cuda without a GPU)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"probgen on {describe_device(device)}, torch threads {threads}; scikit-learn on the CPU; "
          f"wall seconds per fit, after {args.pause:g} s idle")
    ds = load("digits", seed=0)
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with threadpool_limits(args.threads):  # None: the user's BLAS threads
        for cov in covs:  # warm-up: first-call costs (imports, Pyro's handlers, CUDA kernels) untimed
            bench(ds, 2, cov, 1, args.reg_covar, 2 if args.n_init > 1 else 1, device)
        rows = [bench(ds, k, cov, args.repeats, args.reg_covar, 1, device, args.pause) for cov in covs for k in ks]
        if args.n_init > 1:
            rows += [bench(ds, k, cov, min(args.repeats, 3), args.reg_covar, args.n_init, device, args.pause)
                     for cov in covs for k in ks]
    print(f"{'K':>3} {'cov':<5} {'n_init':>6} {'device':<7} {'sklearn s':>10} {'probgen s':>10} {'ratio':>6} "
          f"{'held-out gap (nats)':>20}")
    for r in rows:
        gap = f"{r['loglik_gap']:+.3f} ± {r['loglik_gap_sd']:.3f}"
        print(f"{r['K']:>3} {r['covariance']:<5} {r['n_init']:>6} {r['device']:<7} {r['sklearn_fit_seconds']:>10.3f} "
              f"{r['probgen_fit_seconds']:>10.3f} {r['time_ratio']:>6.2f} {gap:>20}")
    write_json(args.out, {"data": "digits (float32 grey levels in [0, 1], load('digits', seed=0))",
                          "defaults": "GMM(K, covariance=cov).fit(x, seed=s) vs GaussianMixture(K, covariance_type=cov, "
                                      "random_state=s)", "reg_covar": args.reg_covar, "device": str(device),
                          "device_name": describe_device(device), "torch_threads": threads,
                          "seconds": "wall, per fit (median over seeds)", "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

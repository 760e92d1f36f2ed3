"""probgen's GMM against scikit-learn's GaussianMixture, same data, same K, same covariance.

Both fit the built-in digits (grey levels in [0, 1], 1,297 training images) with
k-means initialisation and EM (same K, reg_covar, max_iter, tol), run alternately in one
process so that machine load affects both alike; we report the median fit time of several
runs and the held-out log-likelihood per image on the 250 test images.

    python experiments/bench_gmm.py            # K = 10, 50, 200; diag and full
    python experiments/bench_gmm.py --quick    # K = 10, diag, one repeat (smoke test)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from probgen.data import load
from probgen.io import write_json
from probgen.models import GMM


def bench(ds, k: int, cov: str, repeats: int, reg: float) -> dict:
    from sklearn.mixture import GaussianMixture

    xtr = ds.train.reshape(len(ds.train), -1)
    xte = ds.test.reshape(len(ds.test), -1)
    xtr_np, xte_np = xtr.double().numpy(), xte.double().numpy()
    sk_times, pg_times, sk_ll, pg_ll = [], [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        sk = GaussianMixture(k, covariance_type=cov, reg_covar=reg, random_state=r, max_iter=100, tol=1e-3)
        sk.fit(xtr_np)
        sk_times.append(time.perf_counter() - t0)
        sk_ll.append(float(sk.score(xte_np)))

        t0 = time.perf_counter()
        pg = GMM(k, covariance=cov, reg_covar=reg).fit(xtr.double(), seed=r, max_iter=100, tol=1e-3,
                                                       progress=False)
        pg_times.append(time.perf_counter() - t0)
        pg_ll.append(float(pg.log_prob(xte.double()).mean()))
    return {
        "K": k, "covariance": cov, "repeats": repeats,
        "sklearn_fit_seconds": statistics.median(sk_times), "probgen_fit_seconds": statistics.median(pg_times),
        "time_ratio": statistics.median(pg_times) / statistics.median(sk_times),
        "sklearn_test_loglik": statistics.median(sk_ll), "probgen_test_loglik": statistics.median(pg_ll),
        "loglik_gap": statistics.median(pg_ll) - statistics.median(sk_ll),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="K=10 diag, one repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ks", default="10,50,200", help="numbers of components, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="threads for torch and for scikit-learn's BLAS")
    p.add_argument("--reg-covar", type=float, default=1e-3,
                   help="added to variances by both libraries (1e-3: digits have constant pixels)")
    p.add_argument("--out", default="runs/bench_gmm.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)  # scikit-learn works in float64; so do we here
    ds = load("digits", seed=0)
    ks = [int(k) for k in args.ks.split(",")]
    configs = [(10, "diag")] if args.quick else [(k, cov) for cov in ("diag", "full") for k in ks]
    repeats = 1 if args.quick else args.repeats
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with threadpool_limits(args.threads):  # the same thread count for both libraries' BLAS
        bench(ds, 2, "diag", 1, args.reg_covar)  # warm-up: first-call costs (imports, Pyro's handlers) untimed
        rows = [bench(ds, k, cov, repeats, args.reg_covar) for k, cov in configs]
    torch.set_default_dtype(torch.float32)
    print(f"{'K':>3} {'cov':<5} {'sklearn s':>10} {'probgen s':>10} {'ratio':>6} "
          f"{'sklearn ll':>11} {'probgen ll':>11} {'gap':>7}")
    for r in rows:
        print(f"{r['K']:>3} {r['covariance']:<5} {r['sklearn_fit_seconds']:>10.3f} {r['probgen_fit_seconds']:>10.3f} "
              f"{r['time_ratio']:>6.2f} {r['sklearn_test_loglik']:>11.2f} {r['probgen_test_loglik']:>11.2f} "
              f"{r['loglik_gap']:>7.2f}")
    write_json(args.out, {"data": "digits (grey, [0,1])", "torch_threads": torch.get_num_threads(), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

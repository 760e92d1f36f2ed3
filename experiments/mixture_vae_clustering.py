"""Clustering with the GMM and the VAE in one story (``probgen.models.MixtureVAE``).

On binarized digits (or MNIST), with K = number of classes and no labels during training:

- unsupervised clustering accuracy on the test split (clusters matched one-to-one to the
  labels by the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``) of
  MixtureVAE, of the GMM alone (a mixture of Bernoullis on the pixels, EM), and of
  k-means (and a diagonal GMM) on the codes of a plain VAE;
- test log-likelihood (nats/image) of MixtureVAE against the plain VAE (same networks,
  same epochs; IWAE with K samples) and against the Bernoulli mixture (exact);
- per-cluster sample grids: one row per cluster, rows ordered by the label they match.

Usage::

    python experiments/mixture_vae_clustering.py --quick          # digits, small, ~1 min
    python experiments/mixture_vae_clustering.py                  # MNIST if $PROBGEN_DATA_DIR, else digits
    python experiments/mixture_vae_clustering.py --data digits --seeds 3

Writes ``OUT/results.json``, ``OUT/clusters_<seed>.png`` (MixtureVAE per-cluster samples) and
``OUT/gmm_components_<seed>.png`` (the Bernoulli mixture's component means).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="digits, small networks, few epochs (smoke test)")
    p.add_argument("--data", default=None,
                   help="digits or mnist (default: mnist when $PROBGEN_DATA_DIR is set and not --quick)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="runs/mixture_vae_clustering")
    p.add_argument("--seeds", type=int, default=1, help="repeat with N seeds (default: 1)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST..FIRST+N-1 (default: 0)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of both VAEs")
    p.add_argument("--warmup-epochs", type=int, default=None,
                   help="MixtureVAE epochs before its components are placed on k-means of the codes")
    p.add_argument("--z-dim", type=int, default=10)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=None, help="IWAE samples per test image")
    p.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    p.add_argument("--val-size", type=int, default=None, help="use only the first N validation images")
    p.add_argument("--test-size", type=int, default=None, help="use only the first N test images")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (small nets: 1 is fastest)")
    return p.parse_args(argv)


def settings(args) -> dict:
    data = args.data or ("mnist" if os.environ.get("PROBGEN_DATA_DIR") and not args.quick else "digits")
    if args.quick:
        base = dict(epochs=10, warmup=10, hidden=128, lr=3e-3, num_samples=50, batch_size=128)
    elif data == "digits":
        base = dict(epochs=150, warmup=20, hidden=256, lr=3e-3, num_samples=1000, batch_size=128)
    else:  # MNIST: 60k images, CPU-sized
        base = dict(epochs=20, warmup=3, hidden=500, lr=1e-3, num_samples=200, batch_size=256)
    for key, flag in (("epochs", "epochs"), ("warmup", "warmup_epochs"), ("hidden", "hidden"), ("lr", "lr"),
                      ("num_samples", "num_samples")):
        if getattr(args, flag) is not None:
            base[key] = getattr(args, flag)
    return dict(base, data=data, z_dim=args.z_dim)


def run_seed(ds, cfg: dict, seed: int, out: Path) -> list[dict]:
    import pyro
    from sklearn.cluster import KMeans

    from probgen.evaluate import summarize
    from probgen.models import GMM, VAE, MixtureVAE
    from probgen.models.mixture_vae import matched_accuracy
    from probgen.plots import image_grid

    K = ds.n_classes
    train, test, labels = ds.train, ds.test, ds.test_labels
    fit = dict(val=ds.val, epochs=cfg["epochs"], lr=cfg["lr"], batch_size=cfg["batch_size"], progress=False,
               patience=None)
    rows = []

    def row(name, clusters, ll=None, seconds=0.0, estimator=None):
        r = {"model": name, "seed": seed, "cluster_accuracy": matched_accuracy(clusters, labels),
             "fit_seconds": round(seconds, 1)}
        if ll is not None:
            s = summarize(ll)
            r.update(test_log_lik=s.mean, stderr=s.stderr, estimator=estimator)
        rows.append(r)
        ll_text = f"   test log-lik {r['test_log_lik']:8.2f} ± {r['stderr']:.2f} ({estimator})" if ll is not None else ""
        print(f"  {name:<28} accuracy {r['cluster_accuracy']:.3f}{ll_text}", flush=True)

    # 1. the GMM alone: a mixture of Bernoullis on the pixels, by EM
    pyro.set_rng_seed(seed)
    t0 = time.perf_counter()
    gmm = GMM(K, likelihood="bernoulli", x_shape=ds.shape).fit(train, seed=seed, progress=False)
    row("GMM on pixels (EM)", gmm.assign(test), gmm.log_prob(test), time.perf_counter() - t0, "exact")
    means = torch.sigmoid(gmm.x_logits.detach()).reshape(K, *ds.shape)  # component means, K × H × W
    image_grid(means[_order(gmm.assign(test), labels, K)], out / f"gmm_components_{seed}.png", nrow=K)

    # 2. a plain VAE, then k-means / a GMM on its codes
    pyro.set_rng_seed(seed)
    t0 = time.perf_counter()
    vae = VAE(ds.x_dim, z_dim=cfg["z_dim"], hidden=(cfg["hidden"],), x_shape=ds.shape).fit(train, **fit)
    vae_s = time.perf_counter() - t0
    vae_ll = vae.log_prob(test, num_samples=cfg["num_samples"])
    rows.append({"model": "VAE", "seed": seed, "test_log_lik": summarize(vae_ll).mean,
                 "stderr": summarize(vae_ll).stderr, "estimator": f"IWAE K={cfg['num_samples']}",
                 "fit_seconds": round(vae_s, 1)})
    print(f"  {'VAE':<28} {'':>14}   test log-lik {rows[-1]['test_log_lik']:8.2f} ± {rows[-1]['stderr']:.2f} "
          f"(IWAE K={cfg['num_samples']})", flush=True)
    z_train, z_test = vae.encode(train)[0], vae.encode(test)[0]
    km = KMeans(K, n_init=10, random_state=seed).fit(z_train.numpy())
    row("k-means on VAE codes", torch.as_tensor(km.predict(z_test.numpy())), seconds=vae_s)
    gz = GMM(K, likelihood="normal").fit(z_train, seed=seed, progress=False)
    row("GMM on VAE codes (EM)", gz.assign(z_test), seconds=vae_s)

    # 3. the two in one story
    pyro.set_rng_seed(seed)
    t0 = time.perf_counter()
    mvae = MixtureVAE(ds.x_dim, n_clusters=K, z_dim=cfg["z_dim"], hidden=(cfg["hidden"],), x_shape=ds.shape)
    if cfg["warmup"]:
        mvae.fit(train, **dict(fit, epochs=cfg["warmup"]))
        mvae.init_clusters(train, seed=seed)
    mvae.fit(train, **fit)
    mvae_ll = mvae.log_prob(test, num_samples=cfg["num_samples"])
    row("MixtureVAE", mvae.cluster(test), mvae_ll, time.perf_counter() - t0, f"IWAE K={cfg['num_samples']}")
    diff = summarize(mvae_ll - vae_ll)  # paired over the same test images
    rows[-1].update(minus_vae=diff.mean, minus_vae_stderr=diff.stderr)
    print(f"  {'MixtureVAE - VAE (paired)':<28} {'':>14}   {diff.mean:+8.2f} ± {diff.stderr:.2f} nats/image",
          flush=True)
    assert mvae.checked.elbo == "enum"
    grid = mvae.sample_clusters(10, mean=True)[_order(mvae.cluster(test), labels, K)]  # K × 10 × H × W
    image_grid(grid.reshape(-1, *ds.shape), out / f"clusters_{seed}.png", nrow=10)
    return rows


def _order(clusters, labels, K: int) -> torch.Tensor:
    """Cluster indices sorted by the label each is matched to (unmatched clusters last)."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((K, int(labels.max()) + 1))
    np.add.at(counts, (clusters.numpy(), labels.numpy()), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    matched = [int(r) for _, r in sorted(zip(cols, rows))]
    return torch.tensor(matched + [k for k in range(K) if k not in matched])


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from probgen.data import load
    from probgen.io import write_json

    cfg = settings(args)
    ds = load(cfg["data"], args.data_dir, binarize=True, seed=0)
    if args.train_size is not None:  # a CPU-sized subset (the split is already shuffled)
        ds.train, ds.train_labels = ds.train[:args.train_size], ds.train_labels[:args.train_size]
        cfg["train_size"] = len(ds.train)
    for split, n in (("val", args.val_size), ("test", args.test_size)):
        if n is not None:
            setattr(ds, split, getattr(ds, split)[:n])
            setattr(ds, f"{split}_labels", getattr(ds, f"{split}_labels")[:n])
            cfg[f"{split}_size"] = n
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"data: {ds.describe()}; settings: {cfg}")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        print(f"seed {seed}:")
        rows += run_seed(ds, cfg, seed, out)
    summary = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        summary[name] = {k: float(np.mean([r[k] for r in rs])) for k in ("cluster_accuracy", "test_log_lik")
                         if k in rs[0]}
    print("\nmean over seeds:")
    for name, s in summary.items():
        print(f"  {name:<28} " + "   ".join(f"{k} {v:.3f}" for k, v in s.items()))
    write_json(out / "results.json", {"data": ds.describe(), "settings": cfg, "seeds": args.seeds,
                                      "rows": rows, "summary": summary,
                                      "unit": "test log-lik in nats/image of binarized images",
                                      # what fit_seconds measured: wall seconds, on the CPU with these threads
                                      "fit_seconds": "wall", "device": "cpu", "torch_threads": args.threads})
    print(f"wrote {out / 'results.json'} and per-cluster grids in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

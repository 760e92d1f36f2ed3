"""Cost of writing the VAE as a Pyro program: probgen's SVI step vs a hand-written PyTorch step.

Both use the same architecture (the plain model is a deep copy of probgen's encoder
and decoder networks), the same Adam settings and the same minibatches; steps are
interleaved so that machine load affects both alike. Reported: median ms per step
and the ratio probgen / plain, for each ELBO variant.

    python experiments/bench_vae_speed.py                 # binarized MNIST if $PROBGEN_DATA_DIR, else digits
    python experiments/bench_vae_speed.py --quick         # few steps (smoke test)
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import pyro
import pyro.optim
import torch
import torch.nn.functional as F

from probgen.data import load
from probgen.infer.svi import make_elbo
from probgen.io import write_json
from probgen.models import VAE


def plain_step(enc, dec, opt, x):
    """The textbook VAE step: reparameterised z, Bernoulli log-lik, analytic KL."""
    loc, scale = enc(x)
    z = loc + scale * torch.randn_like(loc)
    rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum")
    kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * torch.log(scale)).sum()
    loss = rec + kl
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def run(x, variant: str, steps: int, batch_size: int, hidden, z_dim: int, warmup: int) -> dict:
    pyro.clear_param_store()
    torch.manual_seed(0)
    vae = VAE(x.shape[1], z_dim=z_dim, hidden=hidden)
    enc, dec = copy.deepcopy(vae.encoder), copy.deepcopy(vae.decoder)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), make_elbo(variant))
    g = torch.Generator().manual_seed(0)
    t_plain, t_pyro = [], []
    for i in range(steps + warmup):
        idx = torch.randint(0, len(x), (batch_size,), generator=g)
        xb = x[idx]
        t0 = time.perf_counter()
        plain_step(enc, dec, opt, xb)
        t1 = time.perf_counter()
        svi.step(xb)
        t2 = time.perf_counter()
        if i >= warmup:  # the first steps include JIT compilation
            t_plain.append(t1 - t0)
            t_pyro.append(t2 - t1)
    p, q = statistics.median(t_plain) * 1e3, statistics.median(t_pyro) * 1e3
    return {"elbo": variant, "plain_ms": p, "probgen_ms": q, "ratio": q / p, "steps": steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--data", default=None, help="default: binarized-mnist if available, else digits")
    ap.add_argument("--variants", default="trace,meanfield,jit,jit-meanfield")
    ap.add_argument("--out", default="runs/bench_vae_speed.json")
    args = ap.parse_args(argv)
    name = args.data or ("binarized-mnist" if os.environ.get("PROBGEN_DATA_DIR") else "digits")
    ds = load(name, binarize=True)
    x = ds.train.reshape(len(ds.train), -1)
    hidden = (400,) if x.shape[1] > 100 else (256,)
    steps, warmup = (10, 3) if args.quick else (args.steps, 20)
    variants = args.variants.split(",")
    if args.quick:
        variants = variants[:2]
    rows = [run(x, v, steps, args.batch_size, hidden, 20 if x.shape[1] > 100 else 10, warmup) for v in variants]
    print(f"data {name}, x_dim {x.shape[1]}, hidden {hidden}, batch {args.batch_size}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'elbo':<15}{'plain ms':>10}{'probgen ms':>12}{'ratio':>8}")
    for r in rows:
        print(f"{r['elbo']:<15}{r['plain_ms']:>10.2f}{r['probgen_ms']:>12.2f}{r['ratio']:>8.2f}")
    write_json(args.out, {"data": name, "x_dim": x.shape[1], "hidden": list(hidden),
                          "batch_size": args.batch_size, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

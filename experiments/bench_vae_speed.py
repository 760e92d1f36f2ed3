"""Cost of writing the VAE as a Pyro program: probgen's SVI step vs a hand-written PyTorch step.

Both use the same architecture (the plain model is a deep copy of probgen's encoder and
decoder networks), the same Adam settings and the same minibatches, interleaved in one
process so that machine load affects both alike. Two measurements:

- **per step**: median ms of one step, plain eager PyTorch vs probgen's step
  (:class:`probgen.infer.svi.SVIStep`: Pyro's ELBO as a module + one ``torch.optim.Adam``),
  for each ELBO variant, and Pyro's own ``SVI.step`` for reference;
- **per epoch**: median seconds of one whole epoch through the public API
  (``VAE.fit(x, epochs=1)``: data shuffling, batching and the training loop included, no
  validation) vs a plain epoch loop over the same shuffled batches.

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
from probgen.infer.svi import SVIStep, make_elbo
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


def _pair(x, hidden, z_dim):
    torch.manual_seed(0)
    vae = VAE(x.shape[1], z_dim=z_dim, hidden=hidden)
    enc, dec = copy.deepcopy(vae.encoder), copy.deepcopy(vae.decoder)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    return vae, enc, dec, opt


def run_steps(x, variant: str, steps: int, batch_size: int, hidden, z_dim: int, warmup: int) -> dict:
    """Median ms per step: plain, probgen's step, Pyro's SVI.step (interleaved)."""
    pyro.clear_param_store()
    vae, enc, dec, opt = _pair(x, hidden, z_dim)
    ours = SVIStep(vae, make_elbo(variant), lr=1e-3)
    ref = copy.deepcopy(vae)
    svi = pyro.infer.SVI(ref.model, ref.guide, pyro.optim.Adam({"lr": 1e-3}), make_elbo(variant))
    g = torch.Generator().manual_seed(0)
    times = {"plain": [], "probgen": [], "pyro_svi": []}
    for i in range(steps + warmup):
        xb = x[torch.randint(0, len(x), (batch_size,), generator=g)]
        for name, fn in (("plain", lambda: plain_step(enc, dec, opt, xb)), ("probgen", lambda: ours(xb)),
                         ("pyro_svi", lambda: svi.step(xb))):
            t0 = time.perf_counter()
            fn()
            if i >= warmup:  # the first steps include JIT compilation
                times[name].append(time.perf_counter() - t0)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"elbo": variant, "plain_ms": ms["plain"], "probgen_ms": ms["probgen"], "pyro_svi_ms": ms["pyro_svi"],
            "ratio": ms["probgen"] / ms["plain"], "pyro_svi_ratio": ms["pyro_svi"] / ms["plain"], "steps": steps}


def run_epochs(x, epochs: int, batch_size: int, hidden, z_dim: int) -> dict:
    """Median seconds per epoch: ``VAE.fit(x, epochs=1)`` vs a plain loop over shuffled batches."""
    pyro.clear_param_store()
    vae, enc, dec, opt = _pair(x, hidden, z_dim)
    g = torch.Generator().manual_seed(0)
    t_plain, t_fit = [], []
    for e in range(epochs + 1):
        t0 = time.perf_counter()
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            plain_step(enc, dec, opt, x[idx])
        t1 = time.perf_counter()
        vae.fit(x, epochs=1, batch_size=batch_size, lr=1e-3, elbo="meanfield", progress=False, check=e == 0)
        t2 = time.perf_counter()
        if e > 0:  # the first fit also runs the story check
            t_plain.append(t1 - t0)
            t_fit.append(t2 - t1)
    p, q = statistics.median(t_plain), statistics.median(t_fit)
    return {"plain_epoch_s": p, "probgen_fit_epoch_s": q, "epoch_ratio": q / p, "epochs": epochs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    ap.add_argument("--data", default=None, help="default: binarized-mnist if available, else digits")
    ap.add_argument("--variants", default="meanfield,trace")
    ap.add_argument("--out", default="runs/bench_vae_speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    name = args.data or ("binarized-mnist" if os.environ.get("PROBGEN_DATA_DIR") else "digits")
    ds = load(name, binarize=True)
    x = ds.train.reshape(len(ds.train), -1)
    hidden = (400,) if x.shape[1] > 100 else (256,)
    z_dim = 20 if x.shape[1] > 100 else 10
    steps, warmup, epochs = (10, 3, 1) if args.quick else (args.steps, 20, args.epochs)
    if args.quick:
        x = x[:512]
    variants = args.variants.split(",")[:1 if args.quick else None]
    rows = [run_steps(x, v, steps, args.batch_size, hidden, z_dim, warmup) for v in variants]
    epoch = run_epochs(x, epochs, args.batch_size, hidden, z_dim)
    print(f"data {name}, x_dim {x.shape[1]}, hidden {hidden}, batch {args.batch_size}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'elbo':<12}{'plain ms':>10}{'probgen ms':>12}{'ratio':>8}{'SVI.step ms':>13}{'ratio':>8}")
    for r in rows:
        print(f"{r['elbo']:<12}{r['plain_ms']:>10.2f}{r['probgen_ms']:>12.2f}{r['ratio']:>8.2f}"
              f"{r['pyro_svi_ms']:>13.2f}{r['pyro_svi_ratio']:>8.2f}")
    print(f"epoch: plain {epoch['plain_epoch_s']:.3f} s, probgen fit {epoch['probgen_fit_epoch_s']:.3f} s, "
          f"ratio {epoch['epoch_ratio']:.2f}")
    write_json(args.out, {"data": name, "x_dim": x.shape[1], "hidden": list(hidden), "batch_size": args.batch_size,
                          "threads": torch.get_num_threads(), "rows": rows, "epoch": epoch})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

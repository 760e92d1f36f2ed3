"""Cost of writing the VAE as a Pyro program: probgen's SVI step vs a hand-written PyTorch step.

Both use the same architecture (the plain model is a deep copy of probgen's encoder and
decoder networks), the same Adam settings and the same minibatches, interleaved in one
process so that machine load affects both alike. Two measurements:

- **per step**: median ms of one step (each side ends with the loss as a float, so a GPU step is
  timed to its end): plain eager PyTorch; on CUDA also the plain step captured whole in one CUDA
  graph (forward, backward, Adam ``capturable``: the bar for a model this small); probgen's eager step
  (:class:`probgen.infer.svi.SVIStep`: Pyro's ELBO as a module + one ``torch.optim.Adam``);
  probgen's default for this story on a long fit (``compile=None``: the built-in VAE replays its
  traced step on the CPU and its whole step as one CUDA graph on CUDA, :mod:`probgen.infer.compiled`);
  Pyro's own ``SVI.step``; with ``--compile
  inductor`` (the default) also plain compiled PyTorch (``torch.compile`` of the plain loss) and
  probgen's compiled step;
- **per epoch**: seconds per epoch of one multi-epoch ``VAE.fit`` (data shuffling, batching and
  the training loop included, no validation), default and ``compile=``; a plain epoch loop
  (eager, and compiled) runs between the fit's epochs, from its epoch-end callback, so the two
  sides alternate epoch by epoch. The fit's first epoch (setup, tracing, compilation) is not counted.

Every side steps the same ``torch.optim.Adam(lr=1e-3)`` (default implementation). Compilation
warm-up is left out of the medians (the first 20 steps are not counted).

    python experiments/bench_vae_speed.py                 # binarized MNIST if $PROBGEN_DATA_DIR, else digits
    python experiments/bench_vae_speed.py --quick         # few steps (smoke test)
    python experiments/bench_vae_speed.py --compile none  # no compiler warm-up
    python experiments/bench_vae_speed.py --device cuda --batch-sizes 128,1024
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
from probgen.infer.callbacks import Callback
from probgen.infer.compiled import CompiledStep, auto_backend
from probgen.recipes.config import resolve_device
from probgen.infer.svi import SVIStep, make_elbo
from probgen.io import write_json
from probgen.models import VAE


def plain_loss(enc, dec, x):
    """The textbook VAE loss: reparameterised z, Bernoulli log-lik, analytic KL."""
    loc, scale = enc(x)
    z = loc + scale * torch.randn_like(loc)
    rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum")
    kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * torch.log(scale)).sum()
    return rec + kl


_compiled_loss = None


def plain_step(enc, dec, opt, x, compiled: bool = False):
    """One plain step; ``compiled``: the loss under ``torch.compile`` (the usual way to compile)."""
    global _compiled_loss
    if compiled and _compiled_loss is None:
        _compiled_loss = torch.compile(plain_loss)
    loss = (_compiled_loss if compiled else plain_loss)(enc, dec, x)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def _pair(x, hidden, z_dim, capturable: bool = False):
    torch.manual_seed(0)
    vae = VAE(x.shape[1], z_dim=z_dim, hidden=hidden).to(x.device)
    enc, dec = copy.deepcopy(vae.encoder), copy.deepcopy(vae.decoder)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3, capturable=capturable)
    return vae, enc, dec, opt


class PlainGraph:
    """The plain step captured whole in one CUDA graph: forward, backward and Adam (``capturable``);
    a step is one copy of the batch and one replay. CUDA only."""

    def __init__(self, x, hidden, z_dim, batch_size: int):
        _, self.enc, self.dec, self.opt = _pair(x, hidden, z_dim, capturable=True)
        self.x = x[:batch_size].clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capturing stream
            for _ in range(3):
                self.opt.zero_grad(set_to_none=True)
                plain_loss(self.enc, self.dec, self.x).backward()
                self.opt.step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss = plain_loss(self.enc, self.dec, self.x)
            self.loss.backward()
            self.opt.step()

    def __call__(self, xb) -> float:
        if len(xb) != len(self.x):  # the partial last batch: skipped (a graph holds one shape)
            return 0.0
        self.x.copy_(xb)
        self.graph.replay()
        return float(self.loss)


def run_steps(x, variant: str, steps: int, batch_size: int, hidden, z_dim: int, warmup: int,
              backend: str | None = "inductor") -> dict:
    """Median ms per step: plain (eager, compiled), probgen's step (default, compiled), Pyro's
    SVI.step, interleaved on the same batches."""
    pyro.clear_param_store()
    vae, enc, dec, opt = _pair(x, hidden, z_dim)
    ours = SVIStep(vae, make_elbo(variant), lr=1e-3)
    ref = copy.deepcopy(vae)
    svi = pyro.infer.SVI(ref.model, ref.guide, pyro.optim.Adam({"lr": 1e-3}), make_elbo(variant))
    vae_d, _, _, _ = _pair(x, hidden, z_dim)
    auto = auto_backend(vae_d, 10**9)  # what a long fit of this story uses by default
    default = SVIStep(vae_d, make_elbo(variant), lr=1e-3)
    if auto is not None:
        default = CompiledStep(default, backend=auto, elbo=variant, quiet=True)
    sides = {"plain": lambda xb: plain_step(enc, dec, opt, xb), "probgen_eager": ours, "probgen": default,
             "pyro_svi": svi.step}
    if x.device.type == "cuda":
        sides["plain_cudagraph"] = PlainGraph(x, hidden, z_dim, batch_size)
    if backend is not None:
        vae_c, enc_c, dec_c, opt_c = _pair(x, hidden, z_dim)
        ours_c = CompiledStep(SVIStep(vae_c, make_elbo(variant), lr=1e-3), backend=backend, elbo=variant)
        sides["probgen_compiled"] = ours_c
        if backend == "inductor":
            sides["plain_compiled"] = lambda xb: plain_step(enc_c, dec_c, opt_c, xb, compiled=True)
    g = torch.Generator().manual_seed(0)
    times = {k: [] for k in sides}
    for i in range(steps + warmup):
        xb = x[torch.randint(0, len(x), (batch_size,), generator=g).to(x.device)]
        for name, fn in sides.items():
            _sync(x)
            t0 = time.perf_counter()
            fn(xb)
            if i >= warmup:  # the first steps include tracing and compilation
                times[name].append(time.perf_counter() - t0)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    row = {"elbo": variant, "batch_size": batch_size, "steps": steps, **{f"{k}_ms": v for k, v in ms.items()},
           **{f"{k}_ratio": v / ms["plain"] for k, v in ms.items() if k != "plain"}}
    row["ratio"] = row["probgen_ratio"]
    if backend is not None:
        row["compiled_active"] = ours_c.active
    return row


class _Between(Callback):
    """Runs the plain epochs between the fit's epochs and times both sides."""

    def __init__(self, plain_sides: dict):
        self.plain_sides, self.fit_s, self.plain_s = plain_sides, [], {k: [] for k in plain_sides}
        self.mark = time.perf_counter()

    def on_epoch_end(self, trainer, record) -> None:
        _sync(trainer.model)
        self.fit_s.append(time.perf_counter() - self.mark)
        for name, fn in self.plain_sides.items():
            t0 = time.perf_counter()
            fn()
            self.plain_s[name].append(time.perf_counter() - t0)
        self.mark = time.perf_counter()


def _sync(t) -> None:
    """Wait for the GPU (a tensor's or a module's device) so that wall time covers its work."""
    device = t.device if torch.is_tensor(t) else next(t.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_epochs(x, epochs: int, batch_size: int, hidden, z_dim: int, backend: str | None = "inductor") -> dict:
    """Seconds per epoch of one ``VAE.fit(x, epochs=epochs + 1)`` (default, then ``compile=backend``),
    each alternating with plain epochs (eager; compiled too beside the compiled fit)."""
    pyro.clear_param_store()
    _, enc, dec, opt = _pair(x, hidden, z_dim)
    _, enc_c, dec_c, opt_c = _pair(x, hidden, z_dim)
    g = torch.Generator().manual_seed(0)

    def plain_epoch(compiled=False):
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            plain_step(enc_c if compiled else enc, dec_c if compiled else dec, opt_c if compiled else opt,
                       x[idx.to(x.device)], compiled=compiled)
        _sync(x)

    graphed = PlainGraph(x, hidden, z_dim, batch_size) if x.device.type == "cuda" else None

    def graph_epoch():
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            graphed(x[idx.to(x.device)])
        _sync(x)

    fit = dict(batch_size=batch_size, lr=1e-3, elbo="meanfield", progress=False, patience=None)
    s, modes = {}, {}
    passes = [("probgen", None, {"plain": plain_epoch, **({"plain_cudagraph": graph_epoch} if graphed else {})})]
    if backend is not None:
        plain = {"plain": plain_epoch, **({"plain_compiled": lambda: plain_epoch(True)} if backend == "inductor"
                                          else {})}
        passes.append(("probgen_compiled", backend, plain))
    for name, mode, plain_sides in passes:
        vae, _, _, _ = _pair(x, hidden, z_dim)
        cb = _Between(plain_sides)
        result = vae.fit(x, epochs=epochs + 1, compile=mode, callbacks=[cb], **fit).train_result
        modes[name] = result.step
        s[f"{name}_capture"] = result.capture_seconds
        s[f"{name}_first_epoch"] = cb.fit_s[0]
        s[name] = statistics.median(cb.fit_s[1:])  # the first epoch: setup, tracing, compilation
        ref = statistics.median(cb.plain_s["plain"][1:])
        s[f"{name}_plain"] = ref
        s[f"{name}_ratio"] = s[name] / ref
        for other in plain_sides:
            if other != "plain":
                s[other] = statistics.median(cb.plain_s[other][1:])
                s[f"{other}_ratio"] = s[other] / ref
    out = {"epochs": epochs, "batch_size": batch_size, "modes": modes,
           **{f"{k}_epoch_s": v for k, v in s.items() if not k.endswith("_ratio")},
           **{f"{k[:-6]}_epoch_ratio": v for k, v in s.items() if k.endswith("_ratio")}}
    out["plain_epoch_s"] = s["probgen_plain"]
    out["probgen_fit_epoch_s"], out["epoch_ratio"] = s["probgen"], s["probgen_ratio"]
    return out


def _device_words(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-sizes", "--batch-size", default="128",
                    help="comma-separated batch sizes, each measured in turn (e.g. 128,1024)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    ap.add_argument("--data", default=None, help="default: binarized-mnist if available, else digits")
    ap.add_argument("--variants", default="meanfield,trace")
    ap.add_argument("--compile", default="inductor", choices=("inductor", "trace", "cudagraph", "none"),
                    help="compiled sides: torch.compile (inductor), probgen's traced graph, its CUDA graph, or none")
    ap.add_argument("--out", default="runs/bench_vae_speed.json")
    args = ap.parse_args(argv)
    try:
        device = resolve_device(args.device)
        sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError as e:
        ap.error(str(e))
    torch.set_num_threads(args.threads)
    name = args.data or ("binarized-mnist" if os.environ.get("PROBGEN_DATA_DIR") else "digits")
    ds = load(name, binarize=True)
    x = ds.train.reshape(len(ds.train), -1).to(device)
    hidden = (400,) if x.shape[1] > 100 else (256,)
    z_dim = 20 if x.shape[1] > 100 else 10
    steps, warmup, epochs = (10, 3, 1) if args.quick else (args.steps, 20, args.epochs)
    if args.quick:
        x = x[:512]
    variants = args.variants.split(",")[:1 if args.quick else None]
    backend = None if args.compile == "none" else args.compile
    runs = []
    for bs in sizes:
        rows = [run_steps(x, v, steps, bs, hidden, z_dim, warmup, backend) for v in variants]
        epoch = run_epochs(x, epochs, bs, hidden, z_dim, backend)
        runs.append({"batch_size": bs, "rows": rows, "epoch": epoch})
        print(f"data {name}, x_dim {x.shape[1]}, hidden {hidden}, batch {bs}, device {_device_words(device)}, "
              f"compile {args.compile}; wall ms per step (ratio to plain eager)")
        sides = [k[:-3] for k in rows[0] if k.endswith("_ms")]
        print(f"{'elbo':<11}" + "".join(f"{k:>24}" for k in sides))
        for r in rows:
            print(f"{r['elbo']:<11}" + "".join(f"{r[k + '_ms']:>16.2f} ({r.get(k + '_ratio', 1.0):.2f}×)"
                                               for k in sides))
        print("wall s per epoch" + "".join(
            f"  {k} {epoch[k + '_epoch_s']:.3f} ({epoch.get(k + '_epoch_ratio', 1.0):.2f}×)"
            for k in ("plain", "plain_compiled", "plain_cudagraph", "probgen", "probgen_compiled")
            if k + "_epoch_s" in epoch)
            + f"   [fit steps: {', '.join(f'{k} {v}' for k, v in epoch['modes'].items())}; first epoch "
            f"{epoch['probgen_first_epoch_epoch_s']:.2f} s, capture {epoch['probgen_capture_epoch_s']:.2f} s]")
    first = runs[0]
    write_json(args.out, {"data": name, "x_dim": x.shape[1], "hidden": list(hidden), "device": str(device),
                          "device_name": _device_words(device), "threads": torch.get_num_threads(),
                          "batch_size": first["batch_size"], "rows": first["rows"], "epoch": first["epoch"],
                          "runs": runs})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

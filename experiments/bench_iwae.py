"""IWAE at scale: images per second and peak extra memory of ``probgen.log_likelihood(vae, x,
num_samples=K)`` (i.e. ``probgen.evaluate.log_likelihood``, here with its ``memory_budget``
option) on binarized-MNIST-sized inputs (issue 20).

The VAE is the 784-400-20 MLP of ``bench_vae_speed.py`` (its weights do not change the cost of
the estimate). The data are the binarized-MNIST test images when ``$PROBGEN_DATA_DIR`` holds them
(``--data binarized-mnist``), else random binary 784-pixel images. The estimator chunks over
examples and over samples (``memory_budget`` floats per chunk tensor), so memory stays bounded
whatever K and the number of images are.

Peak extra memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory in use before the
call; on the CPU the process's resident set size, sampled every 2 ms in a thread, above its
value before the call.

    python experiments/bench_iwae.py                       # K = 5000 on 200 images
    python experiments/bench_iwae.py --n 10000 --device cuda   # the whole test set on a GPU
    python experiments/bench_iwae.py --quick               # smoke test
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import torch

from probgen.evaluate import log_likelihood
from probgen.io import write_json
from probgen.models import VAE

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling _common.py, however this file is run
from _common import DEVICE, device_name  # noqa: E402


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Highest resident set size while the block runs, minus the size before it (Linux)."""

    def __enter__(self):
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.extra = self.peak - self.base


def images(n: int, name: str | None, seed: int) -> tuple[torch.Tensor, str]:
    """``n`` 784-pixel binary images: the named data set's test split, else random bits."""
    if name:
        from probgen.data import load

        ds = load(name, binarize=True)
        return ds.test[:n].reshape(-1, ds.test[0].numel()).float(), name
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 784, generator=g) < 0.13).float(), "random binary 784-pixel images"


def measure(vae, x, *, k: int, memory_budget: int | None, device: str) -> dict:
    """One timed call of the estimator (after a small warm-up) with its peak extra memory."""
    log_likelihood(vae, x[:2], num_samples=min(k, 16), memory_budget=memory_budget)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        ll = log_likelihood(vae, x, num_samples=k, memory_budget=memory_budget)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    extra = (torch.cuda.max_memory_allocated() - base) if device.startswith("cuda") else rss.extra
    return {"k": k, "n": len(x), "seconds": seconds, "images_per_s": len(x) / seconds,
            "weights_per_s": len(x) * k / seconds, "peak_extra_mib": extra / 2**20,
            "memory": "cuda max_memory_allocated" if device.startswith("cuda") else "process RSS",
            "mean_log_likelihood": float(ll.mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K = 50 on 8 images (smoke test)")
    ap.add_argument("--k", type=int, default=5000, help="importance samples per image")
    ap.add_argument("--n", type=int, default=200, help="images scored")
    ap.add_argument("--data", default=None,
                    help="default: binarized-mnist if $PROBGEN_DATA_DIR is set, else random binary images")
    ap.add_argument("--memory-budget", type=int, default=None,
                    help="floats per chunk tensor (default: probgen's, 2**22 on CPU, 2**26 on CUDA)")
    ap.add_argument("--device", default=DEVICE, type=device_name, help="auto (CUDA when available), cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_iwae.json")
    args = ap.parse_args(argv)
    if args.k < 1 or args.n < 1:
        raise SystemExit("bench_iwae: --k and --n must be >= 1")
    torch.set_num_threads(args.threads)
    k, n = (50, 8) if args.quick else (args.k, args.n)
    name = args.data or ("binarized-mnist" if os.environ.get("PROBGEN_DATA_DIR") and not args.quick else None)
    x, described = images(n, name, args.seed)
    torch.manual_seed(args.seed)
    vae = VAE(x.shape[1], z_dim=20, hidden=(400,)).to(args.device).eval()
    x = x.to(args.device)
    row = measure(vae, x, k=k, memory_budget=args.memory_budget, device=args.device)
    print(f"data {described}, VAE {x.shape[1]}-400-20, device {args.device}, threads {torch.get_num_threads()}, "
          f"memory budget {args.memory_budget or 'default'}")
    print(f"K = {k}, {n} images: {row['seconds']:.2f} s wall, {row['images_per_s']:.2f} images/s "
          f"({row['weights_per_s']:.3g} importance weights/s), peak extra memory {row['peak_extra_mib']:.0f} MiB "
          f"({row['memory']})")
    write_json(args.out, {"data": described, "device": args.device, "threads": torch.get_num_threads(),
                          "memory_budget": args.memory_budget, "rows": [row]})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

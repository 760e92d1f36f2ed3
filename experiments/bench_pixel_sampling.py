"""How fast can an autoregressive pixel model draw images? Cached sampler vs the naive loop.

Sampling is sequential: 784 steps for a 28×28 image. Three samplers, fastest first:

- ``cached``: per row, the Gated PixelCNN's vertical stack runs once on the few rows above
  that reach the row; per pixel, only the new column of every horizontal block is computed
  from the few columns that reach it (earlier columns are kept, as in Fast PixelCNN++).
  The Row LSTM keeps the LSTM state of the row above and computes one column per pixel.
- ``rows``: as ``cached`` per row, but re-runs the current row up to the pixel.
- ``naive``: re-runs the whole network on the whole image for every pixel.

All consume the random numbers alike, so under one seed they draw the same images
(checked here on the rows all of them generate).

The naive loop costs the same for every pixel, so it is timed on the first ``--naive-rows``
rows and extrapolated to the whole image (``--naive-rows 28`` times it all). Weights are
random: speed does not depend on training.

    python experiments/bench_pixel_sampling.py            # 64 binarized 28×28 images, both backbones
    python experiments/bench_pixel_sampling.py --quick    # tiny smoke test
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyro
import torch

from probgen.io import write_json
from probgen.models import PixelModel


def naive_rows(model: PixelModel, n: int, rows: int) -> tuple[torch.Tensor, float]:
    """The naive loop (the whole network per pixel) over the first ``rows`` rows: (images, seconds)."""
    h, w = model.shape
    x = torch.zeros(n, 1, h, w)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(rows):
            for j in range(w):
                x[:, 0, i, j] = model._draw(model.net(x)[:, :, i, j], 1.0)
    return x[:, 0], time.perf_counter() - t0


def bench(backbone: str, *, n: int, shape: tuple[int, int], channels: int, n_layers: int | None,
          naive_rows_timed: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = PixelModel(backbone, shape=list(shape), channels=channels, n_layers=n_layers).eval()
    h, w = shape
    rows = min(naive_rows_timed, h)

    pyro.set_rng_seed(seed)
    t0 = time.perf_counter()
    fast = model.sample(n, progress=False)
    fast_s = time.perf_counter() - t0

    pyro.set_rng_seed(seed)
    t0 = time.perf_counter()
    by_rows = model.sample(n, progress=False, method="rows")
    rows_s = time.perf_counter() - t0

    pyro.set_rng_seed(seed)
    slow, slow_part = naive_rows(model, n, rows)
    slow_s = slow_part * h / rows  # every naive step costs one full forward pass
    same = bool(torch.equal(fast[:, :rows], slow[:, :rows]) and torch.equal(fast, by_rows))
    return {
        "backbone": backbone, "n_images": n, "shape": list(shape), "channels": channels,
        "n_layers": model.config["n_layers"] or (5 if backbone == "gated" else 2),
        "n_params": model.n_params(),
        "cached_seconds": fast_s, "cached_images_per_s": n / fast_s,
        "rows_seconds": rows_s, "rows_images_per_s": n / rows_s,
        "naive_seconds": slow_s, "naive_images_per_s": n / slow_s,
        "naive_rows_timed": rows, "naive_extrapolated": rows < h,
        "speedup": slow_s / fast_s, "same_images_on_timed_rows": same,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny model, 8×8, 4 images (smoke test)")
    p.add_argument("-n", type=int, default=64, help="images per batch (default: 64)")
    p.add_argument("--shape", type=int, nargs=2, default=(28, 28), metavar=("H", "W"))
    p.add_argument("--backbones", default="gated,rowlstm", help="(default: gated,rowlstm)")
    p.add_argument("--channels", type=int, default=32, help="(default: 32, as `probgen train pixelcnn`)")
    p.add_argument("--n-layers", type=int, default=None, help="(default: 5 gated blocks / 2 LSTM layers)")
    p.add_argument("--naive-rows", type=int, default=2,
                   help="rows of the naive loop that are timed, then extrapolated (default: 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_pixel_sampling/results.json")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.shape, args.channels, args.naive_rows, args.threads = 4, (8, 8), 8, 8, 1
    torch.set_num_threads(args.threads)
    results = []
    for backbone in [b.strip() for b in args.backbones.split(",") if b.strip()]:
        r = bench(backbone, n=args.n, shape=tuple(args.shape), channels=args.channels, n_layers=args.n_layers,
                  naive_rows_timed=args.naive_rows, seed=args.seed)
        results.append(r)
        ext = " (extrapolated from %d rows)" % r["naive_rows_timed"] if r["naive_extrapolated"] else ""
        print(f"{backbone:<8} {r['n_images']} images {r['shape'][0]}×{r['shape'][1]}, {r['n_params']} params, "
              f"cpu×{args.threads} threads, wall: cached {r['cached_seconds']:.2f} s = "
              f"{r['cached_images_per_s']:.2f} img/s; "
              f"rows {r['rows_seconds']:.2f} s = {r['rows_images_per_s']:.2f} img/s; "
              f"naive {r['naive_seconds']:.1f} s = {r['naive_images_per_s']:.3f} img/s{ext}; "
              f"speed-up ×{r['speedup']:.1f}; same images: {r['same_images_on_timed_rows']}", flush=True)
    write_json(args.out, {"device": "cpu", "threads": args.threads, "seconds": "wall", "torch": torch.__version__,
                          "results": results})
    print(f"wrote {args.out}")
    return 0 if all(r["same_images_on_timed_rows"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

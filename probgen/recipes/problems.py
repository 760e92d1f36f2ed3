"""``probgen problems``: the two problems of the VAE the lecture names, measured on a checkpoint.

- **Blur.** The decoder's mean images are smooth averages, its draws add independent pixel noise;
  a PixelCNN or a GAN draws crisp images. Each set is shown side by side with a sharpness number
  (:func:`probgen.metrics.sharpness`: mean |difference| of neighbouring pixels; real images for scale).
- **Imitate or create?** Each generated image beside its nearest training image with the distance,
  and the distribution of nearest-training-image distances of generated images against that of
  held-out real images (which the model never saw): a model that copies its training set sits far to
  the left of the held-out images; one that creates sits where new real images do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig, RunConfig, opt, out_dir, resolve_device, runs_in, seed_everything, with_device

__all__ = ["ProblemsConfig", "ProblemsResult", "problems"]


@dataclass
class ProblemsConfig:
    """``probgen problems``: blur and imitation of a VAE checkpoint (others drawn beside it)."""

    checkpoint: str = opt("", "a vae checkpoint (or any model with mean images: cvae, autoencoder, mixture-vae)")
    compare: list = opt(None, "more checkpoints whose draws are shown beside (pixelcnn, gan, ...)", nargs="+",
                        metavar="CKPT", default_factory=list)
    n: int = opt(36, "images per set in the blur figure (a PixelCNN draws them pixel by pixel)", flag="-n")
    n_eval: int = opt(500, "generated and held-out images whose nearest training image is found")
    pairs: int = opt(10, "generated images shown beside their nearest training image")
    data: DataConfig | None = None  # None: the data the checkpoint was trained on
    run: RunConfig = runs_in("runs/problems")


@dataclass
class ProblemsResult:
    numbers: dict
    paths: list[Path]
    lines: list[str]
    images: dict = field(default_factory=dict)  # name -> images [n, H, W] of the blur figure


def _draw(model, n: int, *, mean: bool):
    """``n`` images from ``model`` (decoder means when ``mean`` and the model has them)."""
    import torch

    kwargs = {"mean": True} if mean and "sample_mean" in model.traits.offers else {}
    with torch.no_grad():
        return model.sample(n, **kwargs).detach().cpu().float()


def problems(cfg: ProblemsConfig) -> ProblemsResult:
    """Blur (means vs draws vs other families, sharpness) and imitation (nearest training images).

    :raises ValueError: bad counts, a checkpoint without mean images, or data of another shape (one line).
    :raises FileNotFoundError: a checkpoint that does not exist.
    """
    import torch

    from ..io import write_json
    from ..metrics import grey_share, nearest_neighbours, sharpness
    from ..models import load
    from ..plots.vae import distance_histogram, nearest_pairs, panel_figure
    from .models import load_checkpoint_data

    for flag, value in (("-n", cfg.n), ("--n-eval", cfg.n_eval), ("--pairs", cfg.pairs)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    from .guard import claim

    claim(cfg)  # nothing in --out replaced without --force
    seed_everything(cfg.run.seed)
    device = str(resolve_device(cfg.run.device))
    model = load(cfg.checkpoint, device=device).eval()
    if "sample_mean" not in model.traits.offers:
        raise ValueError(f"{cfg.checkpoint}: a {model.kind} has no decoder means; pass a vae checkpoint first "
                         "(and this one with --compare)")
    ds = load_checkpoint_data(cfg.checkpoint, cfg.data)
    model.prepare(ds.test[:1])  # one line if the data does not fit the model (another image size)
    others = [(path, load(path, device=device).eval()) for path in cfg.compare]
    out = out_dir(cfg.run.out)
    name = type(model).__name__  # the class: "VAE decoder means"

    # -- blur --------------------------------------------------------------------------------
    torch.manual_seed(cfg.run.seed)
    n_gen = max(cfg.n, cfg.n_eval)
    means = _draw(model, n_gen, mean=True)
    images = {f"{name} decoder means": means[:cfg.n], f"{name} draws": _draw(model, cfg.n, mean=False)}
    for path, other in others:
        images[f"{Path(path).stem} draws"] = _draw(other, cfg.n, mean=False)
    images["real test images"] = ds.test[:cfg.n].detach().cpu().float()
    sharp = {k: sharpness(v.reshape(len(v), *ds.shape)) for k, v in images.items()}
    grey = {k: grey_share(v) for k, v in images.items()}
    side = max(1, int(round(len(images[f"{name} decoder means"]) ** 0.5)))
    blur_png = panel_figure([[(f"{k}\nsharpness {sharp[k]:.3f}, grey {100 * grey[k]:.0f}%",
                               v.reshape(len(v), *ds.shape), side) for k, v in images.items()]], out / "blur.png",
                            suptitle=f"blur: sharpness = mean |neighbouring pixel difference|, grey = pixels in "
                                     f"(0.1, 0.9) ({ds.name}; real images for scale)", max_width=8.5)

    # -- imitate or create --------------------------------------------------------------------
    gen = means[:cfg.n_eval].reshape(-1, *ds.shape)
    real = ds.test[:cfg.n_eval].detach().cpu().float()
    train = ds.train.detach().cpu().float()
    d_gen, i_gen = nearest_neighbours(gen, train)
    d_real, _ = nearest_neighbours(real, train)
    close = float(torch.quantile(d_real, 0.05))
    copies = float((d_gen < close).float().mean())
    k = min(cfg.pairs, len(gen))
    pairs_png = nearest_pairs(gen[:k], train[i_gen[:k]], d_gen[:k], out / "nearest.png")
    hist_png = distance_histogram({f"{name} decoder means": d_gen, "held-out real test images": d_real},
                                  out / "distances.png")

    numbers = {"data": ds.name, "checkpoint": str(cfg.checkpoint), "sharpness": sharp, "grey_share": grey,
               "nearest_train_distance": {"generated_median": float(d_gen.median()),
                                          "held_out_median": float(d_real.median()),
                                          "held_out_5th_percentile": close,
                                          "generated_closer_than_that": copies,
                                          "n": len(gen)}}
    numbers = with_device(numbers, device)
    write_json(out / "problems.json", numbers)
    width = max(len(k) for k in sharp)
    lines = [f"data: {ds.describe()}",
             "blur: sharpness = mean |difference| of neighbouring pixels (below the real images' = blur, above = "
             "pixel noise); grey = share of pixels in (0.1, 0.9)"]
    lines += [f"  {k:<{width}}  sharpness {v:.3f}  grey {100 * grey[k]:5.1f}%" for k, v in sharp.items()]
    lines += [f"imitate or create: distance to the nearest of {len(train)} training images "
              f"({len(gen)} decoder-mean images vs {len(real)} held-out test images)",
              f"  median {float(d_gen.median()):.2f} generated vs {float(d_real.median()):.2f} held-out real; "
              f"{100 * copies:.1f}% of generated images are closer than 95% of held-out real ones "
              f"(< {close:.2f}: near-copies)",
              f"wrote {blur_png}, {pairs_png}, {hist_png} and {out / 'problems.json'}"]
    return ProblemsResult(numbers, [Path(blur_png), Path(pairs_png), Path(hist_png), out / "problems.json"],
                          lines, images)

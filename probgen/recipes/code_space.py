"""Why a VAE and not an auto-encoder, shown as the lecture shows it (``probgen why-vae``, the tour's panel).

An auto-encoder and a VAE with identical layers, trained on the same data from the same seed,
each decode (a) codes drawn from the prior N(0, I) and (b) codes on the straight line between the
encodings of two real test digits. A digit classifier trained on the real training images
(:func:`probgen.metrics.train_classifier`) judges every decoded image: mean confidence and class
coverage. The lecture's claim: the auto-encoder's code space has holes (random codes and the
points between two encodings decode to non-digits), the VAE's is filled. The auto-encoder whose
codes are drawn from a Gaussian fitted to its training codes is a stated third row (for the
interpolations it is the auto-encoder itself: same codes, same decoder).

:func:`code_space_test` does the measuring for trained models (the tour calls it with its own),
:func:`why_vae` trains both models first and writes the figure and the numbers.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import (DataConfig, FitConfig, RunConfig, load_data, opt, out_dir, parse_int_list, runs_in,
                     seed_everything, with_device)

__all__ = ["WhyVAEConfig", "WhyVAEResult", "why_vae", "code_space_test", "code_space_figure", "code_space_lines",
           "PRIOR_ROWS", "PATH_ROWS", "encode_mean", "decode_mean"]

#: the prior rows: judged row name -> (model key, how its codes are drawn)
PRIOR_ROWS = {"VAE, z ~ N(0, I)": ("variational", "normal"), "AE, z ~ N(0, I)": ("plain", "normal"),
              "AE, z ~ fitted Gaussian": ("plain", "fitted")}
#: the interpolation rows: judged row name -> model key
PATH_ROWS = {"VAE, between two test digits": "variational", "AE, between two test digits": "plain"}


@dataclass
class WhyVAEConfig:
    """``probgen why-vae``: AE vs VAE with identical layer sizes, the same data, seed and codes."""

    z_dim: int = opt(10, "code size of both models")
    hidden: str = opt("256", "hidden widths, comma-separated")
    draws: bool = opt(False, "score Bernoulli/Normal draws instead of decoder mean images")
    n_show: int = opt(64, "samples shown per panel", flag="-n")
    n_eval: int = opt(1000, "prior samples scored per model")
    data: DataConfig = field(default_factory=DataConfig)
    # (b) the straight lines between the codes of two test digits
    pairs: int = opt(100, "pairs of test digits (of different classes) interpolated per model")
    steps: int = opt(8, "decoded points strictly between the two codes of a pair (all of them scored)")
    npy: bool = opt(False, "also write OUT/why_vae_samples.npz (raw images, codes)")
    classifier_epochs: int | None = opt(None, "epochs of the judging classifier (default: metrics.train_classifier's)")
    run: RunConfig = runs_in("runs/why-vae")
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=100))


@dataclass
class WhyVAEResult:
    rows: list[dict]  # the prior rows (and the real test images), judged
    verdict: str
    vae_wins: bool
    classifier_test_accuracy: float
    summary: dict
    paths: list[Path]
    lines: list[str]
    samples: dict = field(default_factory=dict)
    interpolation_rows: list[dict] = field(default_factory=list)


def encode_mean(model, x, y=None):
    """Posterior mean (VAE, CVAE) or code (AE) of images ``x``, ``[n × z_dim]``."""
    out = model.encode(x, y) if model.traits.labels else model.encode(x)
    return out[0] if isinstance(out, tuple) else out


def decode_mean(model, z, y=None):
    """Mean images ``[n, H, W]`` for codes ``z [n × z_dim]`` (``y``: CVAE label, int or ``[n]`` or soft)."""
    if model.traits.labels:
        return model.decode(z, 0 if y is None else y)
    return model.decode(z)


def _pairs(labels, n: int, generator):
    """``n`` pairs ``(a, b)`` of test indices with different labels (any two when unlabelled), ``[n, 2]``."""
    import torch

    m = len(labels) if labels is not None else 0
    a = torch.randint(m, (4 * n,), generator=generator)
    b = torch.randint(m, (4 * n,), generator=generator)
    keep = a != b if labels is None else labels[a] != labels[b]
    pairs = torch.stack([a[keep], b[keep]], 1)[:n]
    if len(pairs) < n:
        raise ValueError(f"--pairs {n}: the test split has too few digits of different classes")
    return pairs


def code_space_test(vae, ae, ds, clf, *, n_eval: int = 1000, pairs: int = 100, steps: int = 8,
                    draws: bool = False, seed: int = 0) -> dict:
    """Decode the same N(0, I) codes, the AE's fitted-Gaussian codes, and the straight lines between the
    codes of the same test-digit pairs with both models; judge every image with ``clf``.

    :param vae: a trained VAE; ``ae``: an AutoEncoder with the same layers (its code Gaussian fitted).
    :param ds: the labelled data set both were trained on (its test split gives the pairs).
    :param clf: a classifier trained on the real training images.
    :param n_eval: prior samples per row; ``pairs``: test pairs; ``steps``: points strictly between.
    :param draws: noisy draws x ~ p(x | z) instead of decoder mean images.
    :return: ``{"rows", "interpolation_rows", "samples", "paths", "pairs", "z", ...}``; ``paths[model]``
        is ``[pairs, steps + 2, H, W]`` (the real digits at both ends, the decoded points between).
    """
    import torch

    from ..codes import lerp
    from ..metrics import judge_rows

    for name, value in (("n_eval", n_eval), ("pairs", pairs), ("steps", steps)):
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    g = torch.Generator().manual_seed(seed)
    models = {"variational": vae.eval(), "plain": ae.eval()}
    mean = {} if draws else {"mean": True}
    z = torch.randn(n_eval, vae.z_dim, generator=g)  # the same codes for both decoders
    z_fit = ae.code_distribution("fitted").sample((n_eval,)).cpu()
    with torch.no_grad():
        samples = {name: models[key].sample(n_eval, z=z if how == "normal" else z_fit, **mean).cpu()
                   for name, (key, how) in PRIOR_ROWS.items()}
        idx = _pairs(ds.test_labels, pairs, g)
        t = torch.linspace(0, 1, steps + 2)[1:-1]  # strictly between: the ends are the real digits
        paths, between = {}, {}
        for name, key in PATH_ROWS.items():
            codes = encode_mean(models[key], ds.test).cpu()  # posterior means (VAE), codes (AE)
            walk = torch.stack([lerp(codes[a], codes[b], t) for a, b in idx.tolist()])  # pairs × steps × z
            x = models[key].sample(pairs * steps, z=walk.reshape(-1, walk.shape[-1]), **mean).cpu()
            between[name] = x  # [pairs · steps, H, W], path by path
            x = x.reshape(pairs, steps, *ds.shape)
            paths[key] = torch.cat([ds.test[idx[:, 0]].cpu()[:, None], x, ds.test[idx[:, 1]].cpu()[:, None]], 1)
    real = ds.test[:n_eval].cpu()
    rows = judge_rows(clf, {"real test images": real, **samples}, train=ds.train.cpu())
    path_rows = judge_rows(clf, between, train=ds.train.cpu())
    for row in path_rows:  # the worst point of each path: a hole shows as one non-digit on the way
        p = clf.predict_proba(between[row["name"]]).max(-1).values.reshape(pairs, steps)
        row["worst_on_path"] = float(p.min(-1).values.mean())
        row["midpoint_confidence"] = float(p[:, (steps - 1) // 2:steps // 2 + 1].mean())
    return {"rows": rows, "interpolation_rows": path_rows, "samples": samples, "real": real, "paths": paths,
            "pairs": idx.tolist(), "z": z, "draws": draws, "n_eval": n_eval, "steps": steps,
            "classifier_test_accuracy": clf.test_accuracy, "n_classes": ds.n_classes}


def code_space_figure(res: dict, path, *, show: int = 36, show_paths: int = 6, suptitle: str = "") -> Path:
    """The side-by-side figure: one row per model (prior samples | paths between test digits), the AE with
    fitted-Gaussian codes as a third row, real test images last."""
    from ..plots.vae import panel_figure

    by = {r["name"]: r for r in res["rows"] + res["interpolation_rows"]}
    C, nrow = res["n_classes"], max(1, int(math.ceil(math.sqrt(show))))

    def prior(name):
        r = by[name]
        return (f"{name}\nconfidence {r['mean_confidence']:.2f}, {r['coverage'] * C:.0f}/{C} classes",
                res["samples"][name][:show], nrow)

    def walk(name, key):
        r, p = by[name], res["paths"][key][:show_paths]
        return (f"{name} (real digits at the ends)\nconfidence {r['mean_confidence']:.2f}, worst on a path "
                f"{r['worst_on_path']:.2f}", p.reshape(-1, *p.shape[2:]), p.shape[1])

    rows = [[prior("VAE, z ~ N(0, I)"), walk("VAE, between two test digits", "variational")],
            [prior("AE, z ~ N(0, I)"), walk("AE, between two test digits", "plain")],
            [prior("AE, z ~ fitted Gaussian")],
            [(f"real test images\nconfidence {by['real test images']['mean_confidence']:.2f}",
              res["real"][:show], nrow)]]
    return panel_figure(rows, path, suptitle=suptitle)


def code_space_lines(res: dict) -> list[str]:
    """The table of :func:`code_space_test` as text lines."""
    C = res["n_classes"]
    by = {r["name"]: r for r in res["rows"] + res["interpolation_rows"]}
    what = "draws" if res["draws"] else "decoder mean images"
    header = f"{'code space':<32}{'confidence ↑':>13}{'classes':>9}{'nearest train':>15}{'worst on path ↑':>17}"
    lines = [f"(a) {res['n_eval']} {what} per row from prior codes; (b) {len(res['pairs'])} pairs of test digits of "
             f"different classes, {res['steps']} points strictly between their codes", header, "-" * len(header)]
    for name in ("real test images", *PRIOR_ROWS, *PATH_ROWS):
        r = by[name]
        worst = f"{r['worst_on_path']:>17.3f}" if "worst_on_path" in r else f"{'':>17}"
        lines.append(f"{name:<32}{r['mean_confidence']:>13.3f}{r['coverage'] * C:>6.0f}/{C}"
                     f"{r['nearest_train_distance']:>15.2f}{worst}")
    lines.append(f"{'AE, z ~ fitted Gaussian, (b)':<32}{'= AE (same codes, same decoder)':>34}")
    return lines


def _verdict(res: dict) -> tuple[bool, str]:
    by = {r["name"]: r for r in res["rows"] + res["interpolation_rows"]}
    v, a = by["VAE, z ~ N(0, I)"], by["AE, z ~ N(0, I)"]
    vi, ai = by["VAE, between two test digits"], by["AE, between two test digits"]
    prior_wins, path_wins = v["mean_confidence"] > a["mean_confidence"], vi["mean_confidence"] > ai["mean_confidence"]
    verdict = (f"prior codes: {'VAE' if prior_wins else 'AE'} images look more like digits (confidence "
               f"{v['mean_confidence']:.3f} VAE vs {a['mean_confidence']:.3f} AE); between two test digits: "
               f"{'VAE' if path_wins else 'AE'} (confidence {vi['mean_confidence']:.3f} vs {ai['mean_confidence']:.3f}, "
               f"worst point on a path {vi['worst_on_path']:.3f} vs {ai['worst_on_path']:.3f})")
    return prior_wins, verdict


def why_vae(cfg: WhyVAEConfig) -> WhyVAEResult:
    """Train an AutoEncoder and a VAE with identical layers on the same data and seed, then
    :func:`code_space_test`; writes ``OUT/why_vae.png``, ``OUT/why_vae.json`` and the checkpoints."""
    import torch

    from ..io import atomic_write, run_files, write_json
    from ..metrics import train_classifier
    from ..models import VAE, AutoEncoder
    from .guard import check_sizes, claim
    from .models import fit_model

    check_sizes(cfg)  # the upper bounds; the lower ones below
    claim(cfg)  # before two models train: nothing in --out replaced without --force
    for flag, value in (("-n", cfg.n_show), ("--n-eval", cfg.n_eval), ("--z-dim", cfg.z_dim),
                        ("--pairs", cfg.pairs), ("--steps", cfg.steps)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    seed = cfg.run.seed
    ds = load_data(cfg.data, need_labels=True)
    out = out_dir(cfg.run.out)
    lik = "bernoulli" if ds.binarized else "normal"
    lines = [f"data: {ds.describe()}"]
    hidden = list(parse_int_list(cfg.hidden, "--hidden"))
    kw = dict(z_dim=cfg.z_dim, hidden=hidden, likelihood=lik, x_shape=ds.shape)
    models = {}
    for cls in (AutoEncoder, VAE):
        seed_everything(seed)  # same seed: same initial layers where shapes agree
        t0 = time.perf_counter()
        model = fit_model(cls(ds.x_dim, **kw), cfg.fit, ds, run_files(out, cls.kind).checkpoint, cfg.run)
        models[cls] = model.eval()
        lines.append(f"trained {cls.kind} ({model.n_params()} parameters) in {time.perf_counter() - t0:.1f} s")
    ae, vae = models[AutoEncoder], models[VAE]

    seed_everything(seed)
    clf = train_classifier(ds, seed=seed, epochs=cfg.classifier_epochs)
    res = code_space_test(vae, ae, ds, clf, n_eval=max(cfg.n_eval, cfg.n_show), pairs=cfg.pairs, steps=cfg.steps,
                          draws=cfg.draws, seed=seed)
    code_norm = float(ae.encode(ds.train).norm(dim=-1).mean())
    prior_norm = float(torch.randn(4096, cfg.z_dim).norm(dim=-1).mean())
    vae_wins, verdict = _verdict(res)
    lines += [f"\ndigit classifier trained on {ds.name} train: test accuracy {clf.test_accuracy:.3f}\n",
              *code_space_lines(res),
              f"\nAE training codes: mean |code| = {code_norm:.2f}, vs {prior_norm:.2f} for z ~ N(0, I): "
              f"nothing in training ties the AE's codes to the prior", "verdict: " + verdict]
    fig = code_space_figure(res, out / "why_vae.png", show=cfg.n_show,
                            suptitle=f"same codes, same layer sizes ({ds.name}, z_dim={cfg.z_dim})")
    summary = {"data": ds.name, "seed": seed, "z_dim": cfg.z_dim, "hidden": hidden,
               "epochs": cfg.fit.epochs, "samples": "draws" if cfg.draws else "decoder means",
               "n_eval": res["n_eval"], "pairs": res["pairs"], "steps": cfg.steps,
               "classifier_test_accuracy": clf.test_accuracy, "ae_code_mean_norm": code_norm,
               "prior_mean_norm": prior_norm, "rows": res["rows"], "interpolation_rows": res["interpolation_rows"],
               "vae_wins": vae_wins, "verdict": verdict}
    summary = with_device(summary, vae.device)
    write_json(out / "why_vae.json", summary)
    paths = [Path(fig), out / "why_vae.json"]
    samples = res["samples"]
    if cfg.npy:
        import numpy as np

        arrays = {vae.kind: samples["VAE, z ~ N(0, I)"].numpy(), "ae": samples["AE, z ~ N(0, I)"].numpy(),
                  "ae_fitted": samples["AE, z ~ fitted Gaussian"].numpy(), "z": res["z"].numpy(),
                  f"{vae.kind}_paths": res["paths"]["variational"].numpy(), "ae_paths": res["paths"]["plain"].numpy(),
                  "pairs": np.asarray(res["pairs"])}
        atomic_write(out / "why_vae_samples.npz", lambda f: np.savez(f, **arrays))
        paths.append(out / "why_vae_samples.npz")
    lines.append(f"wrote {fig}, {out / 'why_vae.json'}" + (f", {paths[2]}" if cfg.npy else "")
                 + f" and checkpoints in {out}/")
    return WhyVAEResult(res["rows"], verdict, vae_wins, clf.test_accuracy, summary, paths, lines, samples,
                        res["interpolation_rows"])

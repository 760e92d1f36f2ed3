"""The binarized-MNIST likelihood table: probgen's families beside the published numbers.

Larochelle & Murray's static binarization (50k train / 10k valid / 10k test). Each model
trains within a wall-time budget (``--minutes`` per model and invocation), checkpoints every
epoch under ``--work`` and resumes there on the next invocation; the best-validation state is
scored once on the test images by :func:`probgen.evaluate.score` (IWAE with k importance
samples, exact, marginal over labels, or Parzen for the GAN). Rows are merged by name into
``OUT/likelihood_table.json`` and ``OUT/table.md``, with a sample grid and a learning curve
per row (all curves in one figure, ``OUT/curves.png``); the VAE's checkpoint is copied to
``OUT/vae.pt``. Rows not trained yet are listed
as "not run", with their measured cost per epoch; every time says what it measured (wall seconds, device, threads).

    python experiments/binarized_mnist.py --models vae --minutes 40       # train / resume
    python experiments/binarized_mnist.py --models vae --minutes 0 --iwae-k 1000   # score only
    python experiments/binarized_mnist.py --models gmm,cvae,gan --minutes 6 --test-size 1000
    python experiments/binarized_mnist.py --models iwae --iwae-train-k 50 --minutes 40   # row iwae-k50
    python experiments/binarized_mnist.py --models hierarchical,pixelcnn --minutes 30
    python experiments/binarized_mnist.py --models= --minutes 0           # rewrite table + figure only
    python experiments/binarized_mnist.py --quick                         # smoke test, seconds

The test split is sorted by class: ``--test-size N`` scores N test images drawn at random
(0 = all 10,000), and every row records how many it used.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _common.py, however this file is run
from _common import (WALL_HOURS, add_run_flags, settle_folders, chosen_rows, elapsed, experiment_parser, folders,  # noqa: E402
                     history_of, measured_on, need_checkpoints, rewind_to_best, rewinds, rewound_seconds,
                     train_seconds, wall_hours)

#: ``--models`` names; ``iwae`` is the row ``iwae-k<K>`` (K = ``--iwae-train-k``)
ROWS = ("gmm", "vae", "iwae", "hierarchical", "cvae", "pixelcnn", "pixelrnn", "gan")
#: wall seconds of one training epoch on 50,000 images on the CPU, one uncontended torch thread (measured
#: 2026-12-01; the command is in docs/binarized_mnist.md): the cost of a row not run yet
COST = {"vae": "3 s/epoch", "iwae-k5": "8 s/epoch", "iwae-k50": "83 s/epoch", "hierarchical": "3 s/epoch",
        "pixelcnn": "344 s/epoch", "pixelrnn": "226 s/epoch"}
FAMILY = {"gmm": "mixture of 500 Bernoullis (EM, exact)", "vae": "VAE 784-200-200-50 tanh, k=1 ELBO",
          "cvae": "CVAE 784+10-200-200-50 tanh (marginal over labels)", "gan": "GAN, the recipe's default DCGAN (Parzen window)",
          "hierarchical": "VAE, 2 stochastic layers x-100-100-z1(100)-50-50-z2(50) relu, k=1 ELBO",
          "pixelcnn": "Gated PixelCNN, 32 channels × 5 blocks, 7×7 mask A (exact)",
          "pixelrnn": "PixelRNN, Row LSTM, 32 channels × 2 layers (exact)"}
#: rows listed without a number until they are trained, with their measured cost
NOT_RUN = {name: f"not run yet: {COST[name]} wall on cpu×1 (one uncontended thread)"
           for name in ("iwae-k50", "hierarchical", "pixelcnn", "pixelrnn")}
NOT_RUN["iwae-k50"] += f" (k=5: {COST['iwae-k5']}); the paper trains 3,280 epochs"
ORDER = ("gmm", "vae", "iwae", "hierarchical", "cvae", "pixelcnn", "pixelrnn", "gan")


#: row -> the published model it is set beside (by its name in :data:`probgen.recipes.published.PUBLISHED`)
PUBLISHED_AS = {"gmm": "mixture of Bernoullis, K=500", "vae": "VAE, 1 stochastic layer (k=1 training)",
                "iwae-k50": "IWAE, 1 stochastic layer, k=50", "pixelcnn": "PixelCNN", "pixelrnn": "PixelRNN (Row LSTM)"}


def published() -> dict:
    """Row name -> (published NLL, source and note), from :data:`probgen.recipes.published.PUBLISHED` (the one
    list, beside the compare table that prints it)."""
    from probgen.recipes.published import published as literature

    by_model = {e.model: e for e in literature("binarized-mnist")}
    return {row: (by_model[m].nll, by_model[m].source + (f"; {by_model[m].note}" if by_model[m].note else ""))
            for row, m in PUBLISHED_AS.items() if m in by_model}


def row_name(model: str, iwae_k: int) -> str:
    """A ``--models`` entry -> its row: ``iwae`` becomes ``iwae-k<K>``."""
    return f"iwae-k{iwae_k}" if model == "iwae" else model


def family(name: str) -> str:
    if name.startswith("iwae-k"):
        return f"IWAE 784-200-200-50 tanh, trained with the k={name[6:]} bound"
    return FAMILY[name]


def _settings(name: str, quick: bool) -> dict:
    """Constructor / trainer options of each row (quick: tiny)."""
    if name == "gmm":
        return {"n_components": 10, "max_iter": 3} if quick else {"n_components": 500, "max_iter": 200}
    if name in ("vae", "cvae") or name.startswith("iwae-k"):  # the IWAE paper's 1-stochastic-layer architecture
        return {"z_dim": 4, "hidden": (16,), "batch_size": 256} if quick else \
            {"z_dim": 50, "hidden": (200, 200), "batch_size": 100}
    if name == "hierarchical":  # the IWAE paper's 2-stochastic-layer architecture (probgen train hvae)
        return {"z1_dim": 8, "z2_dim": 4, "hidden1": "16", "hidden2": "8", "batch_size": 256} if quick else \
            {"z1_dim": 100, "z2_dim": 50, "hidden1": "100,100", "hidden2": "50,50", "batch_size": 100,
             "activation": "relu"}  # tanh (the paper's) sat on a plateau: val −ELBO 120.8 after 233 epochs
    if name in ("pixelcnn", "pixelrnn"):  # small enough for CPU epochs of minutes
        return {"channels": 4, "n_layers": 1, "batch_size": 256} if quick else \
            {"channels": 32, "n_layers": 5 if name == "pixelcnn" else 2, "batch_size": 64}
    if name == "gan":
        return {"hidden": "16,32", "batch_size": 256} if quick else {"hidden": None, "batch_size": 64}
    raise ValueError(f"unknown row {name!r}")


def default_lr(name: str) -> float | None:
    """Adam's learning rate of row ``name`` when ``--lr`` is not given: its recipe's default (EM and the
    GAN: ``None``, they are not Adam on one rate)."""
    from probgen.recipes.models import model_spec

    spec = {"hierarchical": "hvae", "cvae": "cvae", "pixelcnn": "pixelcnn", "pixelrnn": "pixelrnn", "vae": "vae"}
    key = "vae" if name.startswith("iwae-k") else spec.get(name)
    return None if key is None else model_spec(key).config().lr


def train_row(name: str, ds, work: Path, *, minutes: float, quick: bool, seed: int, device: str, quiet: bool,
              warm_start: bool = False, lr: float | None = None):
    """Train (or resume, or with ``minutes == 0`` just load) row ``name``; returns the model.
    ``warm_start``: an IWAE row starts from the VAE row's best weights (same network) instead of
    from scratch (a CPU-budget measure the row's status states). ``lr``: Adam's learning rate for this
    invocation (``None``: the row's default); a resumed run continues with it (a step decay by hand)."""
    import probgen
    from probgen.io import last_path
    from probgen.models import CVAE, VAE
    from probgen.recipes.config import RunConfig, seed_everything
    from probgen.recipes.models import GMMConfig, VAEConfig, fit_model, model_spec
    from probgen.recipes.train import train_model

    path = work / f"{name}.pt"
    if minutes <= 0 or (name == "gmm" and path.is_file()):  # EM is not resumable: a finished fit is reused
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no checkpoint to score (train with --minutes > 0 first)")
        return probgen.load(path, device=device)
    seed_everything(seed)
    run = RunConfig(out=str(work), seed=seed, device=device, quiet=quiet)
    # quick: two more epochs per invocation (a second one resumes); else --minutes is the cap
    opts, epochs = _settings(name, quick), _epochs_done(path) + 2 if quick else 100_000
    if name == "gmm":  # the registry's fit: EM under --minutes, the file written once with its history
        cfg = GMMConfig(n_components=opts["n_components"], max_iter=opts["max_iter"], minutes=minutes)
        return fit_model(model_spec("gmm").build(cfg, ds), cfg, ds, path, run,
                         extra=lambda trained: {"converged": bool(trained.train_result.converged)})
    if name in ("vae", "cvae") or name.startswith("iwae-k"):
        iwae_k = int(name[6:]) if name.startswith("iwae-k") else 1
        cls = CVAE if name == "cvae" else VAE
        args = (ds.x_dim, ds.n_classes) if name == "cvae" else (ds.x_dim,)
        model = cls(*args, z_dim=opts["z_dim"], hidden=opts["hidden"], likelihood="bernoulli", x_shape=ds.shape,
                    activation="tanh", elbo="iwae" if iwae_k > 1 else "meanfield")
        cfg = VAEConfig(epochs=epochs, batch_size=opts["batch_size"], lr=lr or default_lr(name), patience=None,
                        resume=True, minutes=minutes, elbo=model.elbo, num_particles=iwae_k)
        if warm_start and iwae_k > 1 and not last_path(path).is_file():
            if not (work / "vae.pt").is_file():
                raise FileNotFoundError(f"--warm-start: {work / 'vae.pt'} missing (train the vae row first)")
            model.load_state_dict(probgen.load(work / "vae.pt").state_dict())
            (work / f"{name}.warm").write_text("warm-started from vae.pt\n")  # the row's status says so
        return fit_model(model, cfg, ds, path, run)  # labels when the story's traits say so
    if name in ("hierarchical", "pixelcnn", "pixelrnn"):  # the registry's own build and fit
        spec = model_spec("hvae" if name == "hierarchical" else name)
        cfg = spec.config(epochs=epochs, patience=None, resume=True, minutes=minutes, **opts)
        cfg = cfg if lr is None else replace(cfg, lr=lr)
        return spec.trainer(spec.build(cfg, ds), cfg, ds, path, run, [])
    # the GAN: the recipe's fit (classifier monitor, Parzen bandwidth on the validation set);
    # one epoch to time it, then as many as the budget allows, resuming each time
    from probgen.recipes.adversarial import GANConfig

    # quick: a tiny MLP; full size: the recipe's defaults (DCGAN for 28x28; an MLP of 256-512 collapsed onto
    # one class here within 5 epochs, while the DCGAN found all 10 on a 10k subset in 4)
    cfg = GANConfig(arch="mlp" if quick else "auto", hidden=opts["hidden"], batch_size=opts["batch_size"],
                    resume=True, grid_every=0,
                    no_monitor=quick)
    done = _epochs_done(path)
    t0 = time.perf_counter()
    model = train_model("gan", replace(cfg, epochs=done + 1), None, run, ds, path=path).model
    extra = 0 if quick else int((minutes * 60 - (time.perf_counter() - t0)) // max(time.perf_counter() - t0, 1e-3))
    if extra > 0:
        model = train_model("gan", replace(cfg, epochs=done + 1 + extra), None, run, ds, path=path).model
    return model


def refit_row(model, ds, *, epochs: int, k: int, seed: int, quiet: bool) -> dict | None:
    """``--refit-guide``: :func:`probgen.recipes.compare.refit_for_scoring`, as ``compare`` does it."""
    if epochs <= 0:
        return None
    from probgen.recipes.compare import refit_for_scoring

    return refit_for_scoring(model, ds, epochs=epochs, k=k, seed=seed, progress=not quiet)


def check_training_set(path: Path, *, train_valid: bool, training: bool) -> None:
    """A row's resume file and checkpoint remember the set they trained on (``<name>.train-valid`` beside
    them): resuming or scoring with the other set is an error, not a silent mix of two runs."""
    from probgen.io import last_path

    marker, started = path.with_suffix(".train-valid"), last_path(path).is_file() or path.is_file()
    if started and marker.is_file() != train_valid:
        trained = "train + valid" if marker.is_file() else "train only"
        raise ValueError(f"{path.name} was trained on {trained}; " + ("add" if marker.is_file() else "drop")
                         + " --train-valid, or use another --work")
    if train_valid and training and not started:
        marker.write_text("trained on train + valid\n")


def _epochs_done(path: Path) -> int:
    """Epochs already in ``<path>.last.pt`` (0 when there is none)."""
    from probgen.io import last_path, load_checkpoint

    last = last_path(path)
    if not last.is_file():
        return 0
    state = load_checkpoint(last).get("trainer") or {}
    return int(state.get("epoch", -1)) + 1


def score_row(name: str, model, ds, test, test_y, *, k: int, seed: int, refine: int = 0) -> dict:
    """The one scoring policy (:func:`probgen.evaluate.score`) on the chosen test images."""
    from probgen.evaluate import score, summarize
    from probgen.recipes.config import seed_everything

    model.eval()
    seed_everything(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        s = score(model, test.to(model.device), y=test_y, num_samples=k, val=ds.val, seed=seed, refine=refine)
    res = summarize(s.values)
    return {"nll": -res.mean, "stderr": res.stderr, "n_test": res.n, "estimator": s.estimator, "k": s.k,
            "khat_share": s.khat_share, "warning": s.warning, "eval_seconds": time.perf_counter() - t0,
            **({"conditional_nll": float(-s.conditional.mean())} if s.conditional is not None else {})}


def sample_grid(name: str, model, out: Path, seed: int) -> str:
    """64 samples (decoder / component means where the model has them) as ``OUT/<name>_samples.png``."""
    import inspect

    from probgen.recipes.config import seed_everything
    from probgen.recipes.train import save_images

    seed_everything(seed)
    params = inspect.signature(model.sample).parameters
    with torch.no_grad():
        x = model.sample(64, mean=True) if "mean" in params else \
            model.sample(64, progress=False) if "progress" in params else model.sample(64)
    save_images(x.cpu().reshape(64, 28, 28), out / f"{name}_samples.png", nrow=8,
                title=f"{name}: {'means' if 'mean' in params else 'draws'}")
    return f"{name}_samples.png"


def _order(name: str) -> int:
    base = "iwae" if name.startswith("iwae-k") else name
    return ORDER.index(base) if base in ORDER else len(ORDER)


def write_table(out: Path, rows: dict, meta: dict) -> None:
    """``likelihood_table.json`` (every row, merged by name) and ``table.md``."""
    from probgen.io import atomic_write, write_json
    from probgen.recipes.published import published as literature

    rows = {n: rows[n] for n in sorted(rows, key=lambda n: (_order(n), n))}
    write_json(out / "likelihood_table.json", {**meta, "rows": list(rows.values())})
    lines = ["# Binarized MNIST (static binarization): test NLL, nats per image, lower is better", "",
             "| model | test NLL ± s.e. | test images | estimator | k̂ > 0.7 | params | epochs "
             "| train wall-h (device) | status | published |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        nll = f"{r['nll']:.2f} ± {r['stderr']:.2f}" if r.get("nll") is not None else "—"
        est = r.get("estimator") or "—"
        est += f" k={r['k']}" if r.get("k") else ""
        kh = f"{100 * r['khat_share']:.1f} %" if r.get("khat_share") is not None else "—"
        pub = f"{r['published_nll']:.2f}" if r.get("published_nll") else "—"
        status = r["status"] + (f"; {r['seconds_per_epoch']:.0f} s wall per epoch on {measured_on(r)}"
                                if r.get("seconds_per_epoch") else "")  # the row's own, where it trained
        lines.append(f"| {r['name']} | {nll} | {r.get('n_test') or '—'} | {est} | {kh} | {r.get('n_params') or '—'} "
                     f"| {r.get('epochs') or '—'} | {wall_hours(r)} | {status} | {pub} |")
    lines += ["", "Published numbers (the binarization of each test set named):", ""]
    lines += [f"- {e.model}: {e.nll:.2f} ({e.binarization} binarization; {e.source}"
              + (f"; {e.note}" if e.note else "") + ")" for e in literature("binarized-mnist")]
    lines += ["", f"probgen {meta['probgen_version']}; seed {meta['seed']}; test images drawn at random "
              f"(the split is sorted by class); {WALL_HOURS}."]
    if meta.get("quick"):
        lines.insert(1, "\n**quick smoke run, tiny models: not a result**")
    atomic_write(out / "table.md", lambda f: f.write("\n".join(lines) + "\n"), mode="w")


def write_curves(out: Path, rows: dict) -> str | None:
    """``OUT/curves.png``: validation loss (the training bound for the VAE rows, exact NLL for the pixel rows) against
    training hours, one line per row that has one, its test NLL as a dot at the end."""
    from probgen.plots.core import line_plot

    series, xs, marks, where = {}, {}, {}, set()
    for name, r in rows.items():
        path = out / "curves" / f"{name}.json"
        if r.get("nll") is None or not path.is_file():
            continue
        hist = [h for h in json.loads(path.read_text())["history"] if "val_loss" in h]
        if not hist:  # EM and the GAN have no validation loss per epoch
            continue
        hours = [t / 3600 for t in elapsed(hist)]
        series[name], xs[name] = [h["val_loss"] for h in hist], hours
        marks[name] = (hours[-1], r["nll"])
        where.add(measured_on(r))
    if not series:
        return None
    top = max(min(v) for v in series.values()) + 15
    line_plot(series, out / "curves.png", xs=xs, marks=marks,
              xlabel=f"training wall hours ({', '.join(sorted(where))})",
              ylabel="validation loss, nats", ylim=(min(min(v) for v in series.values()) - 8, top),
              title="binarized MNIST: validation loss (the training bound, or exact); dot = test NLL", figsize=(7, 4.5))
    return "curves.png"


def _lr_steps(hist: list) -> list[tuple[int, float | None]]:
    """(first epoch, lr) of each learning rate the history records, in order (``None``: an epoch from
    before histories recorded it, trained with :func:`default_lr`)."""
    steps: list[tuple[int, float | None]] = []
    for r in hist:
        if not steps or steps[-1][1] != r.get("lr"):
            steps.append((r["epoch"], r.get("lr")))
    return steps


def _status(name: str, extra: dict, hist: list, quick: bool) -> str:
    """The row's status line; ``extra``: what its checkpoint recorded beside the weights."""
    extra = extra or {}
    if quick:
        return "quick smoke run: not a result"
    if name == "gmm":
        return "EM converged" if extra.get("converged") else f"EM stopped after {len(hist)} iterations"
    status = f"budget-limited: {len(hist)} epochs, not converged"
    vals = [r["val_loss"] for r in hist if "val_loss" in r]
    if vals:  # the checkpoint scored is the best-validation one: say where it was and whether it overfits
        best = min(range(len(vals)), key=vals.__getitem__)
        status = f"budget-limited: {len(hist)} epochs, best validation at epoch {best + 1}" + \
            (" (the validation bound rises after it)" if len(vals) - best > max(20, len(vals) // 4) else "")
    steps = _lr_steps(hist)
    if len(steps) > 1:
        status += "; Adam lr " + ", then ".join(f"{lr or default_lr(name):g} from epoch {e}" for e, lr in steps)
    if name == "gan":
        q = extra.get("quality") or {}
        if "classes_found" in q:
            status += f"; a digit classifier finds {q['classes_found']}/10 classes in its samples"
        status += "; Parzen windows are not a likelihood (they reward blur and memorisation)"
    return status


def main(argv=None) -> int:
    from probgen.infer.refit import REFINE_PARTICLES
    from probgen.recipes.models import checkpoint_extra

    ap = experiment_parser(__doc__, ROWS)
    ap.add_argument("--train-size", type=int, default=0, help="train on N random training images (0: all 50,000)")
    ap.add_argument("--test-size", type=int, default=1000, help="score N random test images (0: all 10,000)")
    ap.add_argument("--iwae-k", type=int, default=1000, help="importance samples per test image (paper: 5000)")
    ap.add_argument("--iwae-train-k", type=int, default=50, help="k of the IWAE bound the `iwae` row trains with")
    ap.add_argument("--warm-start", action="store_true",
                    help="an IWAE row starts from the VAE row's best weights (stated in its status)")
    ap.add_argument("--refit-guide", type=int, default=0, metavar="EPOCHS",
                    help="before scoring a latent-variable row, train its guide alone (model frozen) with the IWAE "
                         "bound for EPOCHS epochs: a tighter estimate of the same p(x) (stated in its status)")
    ap.add_argument("--refit-k", type=int, default=10, help="k of the bound --refit-guide trains with")
    ap.add_argument("--refine", type=int, default=0, metavar="STEPS",
                    help="score a latent-variable row with a proposal fitted to each test image for STEPS Adam steps "
                         f"(IWAE k={REFINE_PARTICLES}, from the guide; model frozen): the amortisation gap leaves the "
                         "number, p(x) is unchanged (the estimator column says so)")
    ap.add_argument("--lr", type=float, default=None,
                    help="Adam learning rate of this invocation for the SVI rows (default: the row's; EM and the GAN "
                         "keep theirs); a resumed row continues with it, e.g. a step decay once validation flattens "
                         "(the learning curve records it)")
    ap.add_argument("--train-valid", action="store_true",
                    help="train on train + validation (60,000 images), a common way to train a final model once the "
                         "recipe is fixed; the validation curve is then not held out (stated in the status). Keep "
                         "such rows in their own --work: a resume file remembers which set it trained on")
    ap.add_argument("--rewind", action="store_true",
                    help="resume each row from its best-validation epoch, not its last (a fresh Adam; the later "
                         "epochs are discarded, their time still counted): with --lr, a decay after overfitting")
    add_run_flags(ap, work="runs/binarized_mnist", out="experiments/results/binarized_mnist",
                  outputs="table, grids, curves, vae.pt", quick="tiny models, 2k training images, seconds")
    args = settle_folders(ap.parse_args(argv))
    models = chosen_rows(ap, args, ROWS)
    for flag in ("train_size", "test_size", "iwae_k", "iwae_train_k", "refit_guide", "refit_k", "refine"):
        low = 0 if flag in ("train_size", "test_size", "refit_guide", "refine") else \
            1 if flag in ("iwae_k", "refit_k") else 2
        if getattr(args, flag) < low:
            ap.error(f"--{flag.replace('_', '-')} must be >= {low}")
    if args.lr is not None and not 0 < args.lr < 1:
        ap.error(f"--lr must be in (0, 1), got {args.lr}")
    names = [row_name(m, args.iwae_train_k) for m in models]
    folders(ap, make=False, work=args.work, out=args.out)  # before the data: a file or /dev/null is one line
    if not args.quick:  # --quick trains whatever --minutes says
        need_checkpoints(ap, args.minutes, Path(args.work), names)
    torch.set_num_threads(1)

    from probgen import __version__
    from probgen.data import load
    from probgen.evaluate import scores_with_guide

    try:
        ds = load("binarized-mnist", args.data_dir, seed=args.seed)
    except (ValueError, FileNotFoundError) as e:
        ap.exit(2, f"binarized_mnist.py: error: {e}\n")
    g = torch.Generator().manual_seed(args.seed)
    n_train = 2000 if args.quick else args.train_size
    if n_train and n_train < len(ds.train):
        idx = torch.randperm(len(ds.train), generator=g)[:n_train]
        ds.train = ds.train[idx]
        ds.train_labels = ds.train_labels[idx] if ds.train_labels is not None else None
        if args.quick:
            ds.val, ds.val_labels = ds.val[:500], ds.val_labels[:500] if ds.val_labels is not None else None
    if args.train_valid:  # the validation set stays the curve's yardstick, no longer held out
        ds.train = torch.cat([ds.train, ds.val])
        if ds.train_labels is not None:
            ds.train_labels = torch.cat([ds.train_labels, ds.val_labels])
    n_test = 200 if args.quick else args.test_size
    idx = torch.randperm(len(ds.test), generator=g)[:n_test] if n_test else torch.arange(len(ds.test))
    test, test_y = ds.test[idx], ds.test_labels[idx] if ds.test_labels is not None else None
    k = 20 if args.quick else args.iwae_k
    work, out = folders(ap, work=args.work, out=args.out)
    (out / "curves").mkdir(exist_ok=True)
    table = out / "likelihood_table.json"
    rows = {r["name"]: r for r in json.loads(table.read_text())["rows"]} if table.is_file() else {}
    pub = published()
    for name, status in NOT_RUN.items():  # untrained rows: the current cost estimate, never a number
        if rows.get(name, {}).get("nll") is None:
            rows[name] = {"name": name, "family": family(name), "nll": None,
                          "published_nll": pub.get(name, (None,))[0], "status": status}
    for name in ("gmm", "vae", "cvae", "gan"):
        rows.setdefault(name, {"name": name, "family": FAMILY[name], "nll": None, "status": "not run yet",
                               "published_nll": pub.get(name, (None,))[0]})

    from probgen.io import write_json

    for name in names:
        try:
            check_training_set(work / f"{name}.pt", train_valid=args.train_valid, training=args.minutes > 0)
        except ValueError as e:
            ap.exit(2, f"binarized_mnist.py: error: {e}\n")
        if args.rewind and args.minutes > 0 and (info := rewind_to_best(work / f"{name}.pt")):
            print(f"{name}: rewound to epoch {info['best_epoch']} ({info['discarded_epochs']} later epochs "
                  "discarded)", flush=True)
        try:  # a resume file of other settings, --warm-start without the vae row: one line
            model = train_row(name, ds, work, minutes=0.1 if args.quick else args.minutes, quick=args.quick,
                              seed=args.seed, device=args.device, quiet=args.quiet, warm_start=args.warm_start,
                              lr=args.lr)
        except (ValueError, FileNotFoundError) as e:
            ap.exit(2, f"binarized_mnist.py: error: {name}: {e}\n")
        refit = refit_row(model, ds, epochs=args.refit_guide, k=args.refit_k, seed=args.seed, quiet=args.quiet)
        hist = history_of(work / f"{name}.pt")
        write_json(out / "curves" / f"{name}.json", {"name": name, "history": hist})
        row = {"name": name, "family": family(name),
               **score_row(name, model, ds, test, test_y, k=k, seed=args.seed, refine=args.refine)}
        extra = checkpoint_extra(work / f"{name}.pt")  # what the trainer and the recipe wrote with the weights
        kept = train_seconds(hist) or float(extra.get("fit_seconds", 0.0))
        secs = kept + rewound_seconds(work / f"{name}.pt")  # the hours count the epochs a rewind discarded
        row.update({"n_params": model.n_params(), "epochs": len(hist), "train_size": len(ds.train),
                    "train_wall_seconds": secs, "seconds_per_epoch": kept / max(len(hist), 1),
                    "train_wall_hours": secs / 3600, "device": args.device, "torch_threads": torch.get_num_threads(),
                    "seed": args.seed, "probgen_version": __version__, "published_nll": pub.get(name, (None,))[0],
                    "samples": sample_grid(name, model, out, args.seed), "curve": f"curves/{name}.json",
                    "status": _status(name, extra, hist, args.quick)})
        for info in rewinds(work / f"{name}.pt"):
            row["status"] += (f"; rewound to its best epoch {info['best_epoch']} before an lr decay "
                              f"({info['discarded_epochs']} later epochs discarded, their time counted)")
        if refit is not None:
            row["guide_refit"] = refit
            row["status"] += (f"; guide refit before scoring (IWAE k={refit['k']}, {refit['epochs']} epochs, best "
                              f"{refit['best_epoch']}; model frozen, p(x) unchanged)")
        if args.refine and scores_with_guide(model):
            row["refine_steps"] = args.refine
            row["status"] += (f"; scored with a proposal fitted to each test image ({args.refine} Adam steps on the "
                              f"IWAE k={REFINE_PARTICLES} bound from the guide; model frozen, p(x) unchanged)")
        if args.train_valid:
            row["status"] += f"; trained on train + valid ({len(ds.train)} images: the validation curve is not held out)"
        if name.startswith("iwae-k"):
            row["train_k"] = int(name[6:])
            if (work / f"{name}.warm").is_file():
                row["warm_start"] = "vae row"
                row["status"] += "; warm-started from the VAE row's best weights, epochs counted from there"
        if name == "gan":
            q = extra.get("quality") or {}
            row.update({k2: q[k2] for k2 in ("coverage", "classes_found", "classifier_test_accuracy") if k2 in q})
        if name == "vae" and not args.quick:  # a copy of the one file the trainer wrote
            shutil.copyfile(work / "vae.pt", out / "vae.pt")
            row["checkpoint"] = "vae.pt"
        rows[name] = row
        print(f"{name}: NLL {row['nll']:.2f} ± {row['stderr']:.2f} nats ({row['estimator']}"
              f"{' k=' + str(row['k']) if row['k'] else ''}, {row['n_test']} test images, "
              f"scored in {row['eval_seconds']:.0f} s wall), {len(hist)} epochs, {secs / 60:.1f} train wall-min on "
              f"{measured_on(row)}"
              + (f"; warning: {row['warning']}" if row.get("warning") else ""), flush=True)
    if table.is_file():  # another invocation may have written rows meanwhile: keep them
        mine, rows = rows, {**rows, **{r["name"]: r for r in json.loads(table.read_text())["rows"]}}
        rows.update({n: mine[n] for n in names})
        rows.update({n: mine[n] for n in NOT_RUN if rows[n].get("nll") is None})
    write_table(out, rows, {"data": "binarized-mnist (Larochelle & Murray static binarization, 50k/10k/10k)",
                            "probgen_version": __version__, "seed": args.seed, "quick": args.quick})
    write_curves(out, rows)
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

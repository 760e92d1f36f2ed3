"""PixelCNN / PixelRNN on binarized digits: exact test log-lik vs the VAE's IWAE at a CPU budget,
and how often class-conditional samples are recognised as their class.

Every model is trained on the 1,297 binarized training digits with validation-based model
selection; CPU seconds are process time (not inflated by other processes on the machine).
The recogniser is ``probgen.metrics.train_classifier`` (an MLP on the real training split).

    python experiments/pixel_digits.py            # the table in docs/pixel.md (a few CPU minutes)
    python experiments/pixel_digits.py --quick    # tiny smoke test
"""
from __future__ import annotations

import argparse
import sys
import time

import pyro
import torch

from probgen.data import load
from probgen.io import write_json
from probgen.models import VAE, PixelModel

#: (name, backbone, channels, n_layers, epochs, lr)
PIXEL_RUNS = [
    ("rowlstm-16x1", "rowlstm", 16, 1, 20, 5e-3),
    ("gated-32x5-5ep", "gated", 32, 5, 5, 2e-3),
    ("gated-16x4", "gated", 16, 4, 20, 5e-3),
    ("gated-32x5", "gated", 32, 5, 15, 5e-3),
]


def timed_fit(model, ds, *, epochs: int, lr: float, batch_size: int, y=None, val_y=None, patience=None) -> float:
    c0 = time.process_time()
    model.fit(ds.train, y=y, val=ds.val, val_y=val_y, epochs=epochs, batch_size=batch_size, lr=lr,
              progress=False, patience=patience)
    return time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models, one epoch (smoke test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--per-class", type=int, default=100, help="conditional samples per class (default: 100)")
    p.add_argument("--out", default="runs/pixel_digits/results.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs, vae_epochs, cond = PIXEL_RUNS, 300, ("gated", 32, 5, 30, 2e-3)
    if args.quick:
        runs, vae_epochs, args.per_class = [("gated-tiny", "gated", 8, 2, 1, 5e-3)], 2, 3
        cond = ("gated", 8, 2, 1, 5e-3)
    ds = load("digits", binarize=True, seed=args.seed)
    rows = []

    pyro.set_rng_seed(args.seed)
    vae = VAE(ds.x_dim, z_dim=10, hidden=[256], x_shape=ds.shape)
    cpu = timed_fit(vae, ds, epochs=vae_epochs, lr=1e-3, batch_size=128, patience=10)
    pyro.set_rng_seed(args.seed)
    rows.append({"model": "vae", "epochs_run": len(vae.train_result.history), "cpu_s": cpu,
                 "n_params": vae.n_params(), "estimator": "IWAE K=1000",
                 "test_log_lik": float(vae.log_prob(ds.test, num_samples=1000).mean())})
    print(rows[-1], flush=True)
    for name, backbone, ch, layers, epochs, lr in runs:
        pyro.set_rng_seed(args.seed)
        m = PixelModel(backbone, shape=list(ds.shape), channels=ch, n_layers=layers)
        cpu = timed_fit(m, ds, epochs=epochs, lr=lr, batch_size=64)
        rows.append({"model": name, "epochs_run": len(m.train_result.history), "lr": lr, "cpu_s": cpu,
                     "n_params": m.n_params(), "estimator": "exact",
                     "test_log_lik": float(m.log_prob(ds.test).mean())})
        print(rows[-1], flush=True)

    # -- class-conditional PixelCNN: are its samples recognised as their class? -----------
    from probgen.metrics import sample_quality, train_classifier

    backbone, ch, layers, epochs, lr = cond
    pyro.set_rng_seed(args.seed)
    m = PixelModel(backbone, shape=list(ds.shape), channels=ch, n_layers=layers, n_classes=ds.n_classes)
    cpu = timed_fit(m, ds, epochs=epochs, lr=lr, batch_size=64, y=ds.train_labels, val_y=ds.val_labels,
                    patience=10)
    clf = train_classifier(ds, seed=args.seed)
    labels = torch.arange(ds.n_classes).repeat_interleave(args.per_class)
    conditional = {"cpu_s": cpu, "n_params": m.n_params(), "classifier_test_accuracy": clf.test_accuracy}
    for t in (1.0, 0.7):
        pyro.set_rng_seed(args.seed)
        pred = torch.tensor(sample_quality(clf, m.sample(len(labels), label=labels, temperature=t,
                                                         progress=False))["predicted"])
        conditional[f"recognised_T{t}"] = float((pred == labels).float().mean())
    lp = torch.stack([m.log_prob(ds.test, torch.full((len(ds.test),), k)) for k in range(ds.n_classes)], 1)
    prior = torch.bincount(ds.train_labels, minlength=ds.n_classes).float() / len(ds.train_labels)
    conditional["bayes_classifier_test_accuracy"] = float(((lp + prior.log()).argmax(1) == ds.test_labels)
                                                          .float().mean())
    conditional["test_log_p_x_given_y"] = float(lp.gather(1, ds.test_labels[:, None]).mean())
    conditional["test_log_p_x"] = float(torch.logsumexp(lp + prior.log(), 1).mean())
    print({"conditional": conditional}, flush=True)
    write_json(args.out, {"data": ds.describe(), "seed": args.seed, "threads": args.threads,
                          "unconditional": rows, "conditional": conditional})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

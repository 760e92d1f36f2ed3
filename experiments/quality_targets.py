"""Issue 18's quality targets, measured through the recipes (what ``probgen train`` runs):

- **gan**: ``probgen train gan`` with its defaults; 1,000 samples judged by a digit classifier
  trained on the real training split (never the model's own): mean confidence (target ≥ 0.85),
  classes found (10), largest class share (≤ 0.20).
- **cvae**: ``probgen train cvae`` with its defaults; per class, 200 decoder-mean images and
  200 Bernoulli draws judged by the same kind of classifier; target ≥ 0.9 mean confidence for
  every class.
- **text**: ``probgen train sentence-vae`` on the shipped sonnets (no data folder needed): KL per
  line, held-out perplexity (IWAE), and how many distinct lines greedy decoding passes through on
  the straight line between two held-out lines' codes (target ≥ 5, mean over pairs); per decoding
  (sampling at T = 1 and 0.7, greedy, beam search) two grammar proxies: the share of word pairs seen
  in the training lines and the share of lines that repeat a word pair.

    python experiments/quality_targets.py                       # all three on the built-in digits
    python experiments/quality_targets.py --part gan --set epochs=150 --set loss=hinge
    python experiments/quality_targets.py --part cvae --data mnist   # needs $PROBGEN_DATA_DIR
    python experiments/quality_targets.py --quick               # smoke test (seconds)

Writes ``--out`` (JSON) and prints one line per target.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from probgen.io import write_json
from probgen.metrics import QUALITY_TARGETS
from probgen.recipes.config import DataConfig, RunConfig, seed_everything
from probgen.recipes.models import model_spec
from probgen.recipes.train import train_model

PARTS = ("gan", "cvae", "text")


def _params(name: str, sets: list[str], quick: dict):
    """The family's default config with ``--set key=value`` overrides (typed like the field)."""
    cfg = model_spec(name).config()
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for key, value in [*quick.items(), *(s.split("=", 1) for s in sets)]:
        key = key.replace("-", "_")
        if key not in fields:
            continue  # --set for another part
        old = getattr(cfg, key)
        if isinstance(value, str):
            if isinstance(old, bool):
                value = value.lower() in ("1", "true", "yes")
            elif value.lower() == "none":
                value = None
            elif isinstance(old, (int, float)) and not isinstance(old, bool):
                value = type(old)(float(value)) if isinstance(old, int) else float(value)
            elif old is None and fields[key].type in ("float | None", "int | None"):
                value = float(value) if "float" in fields[key].type else int(value)
        setattr(cfg, key, value)
    return cfg


def _train(name: str, params, data: DataConfig, out: Path, seed: int):
    seed_everything(seed)
    t0 = time.perf_counter()
    res = train_model(name, params, data, RunConfig(out=str(out), seed=seed, quiet=True))
    return res, time.perf_counter() - t0


def measure_gan(args, out: Path) -> dict:
    from probgen.metrics import check_targets, classes_found, sample_quality, train_classifier

    params = _params("gan", args.set, {"epochs": 2} if args.quick else {})
    data = DataConfig(data=args.data, binarize=args.binarize, seed=args.seed)
    res, secs = _train("gan", params, data, out, args.seed)
    clf = train_classifier(res.dataset, seed=args.seed)
    seed_everything(args.seed)
    q = sample_quality(clf, res.model.sample(200 if args.quick else 1000))
    r = {"config": dataclasses.asdict(params), "seconds": secs, "classifier_test_accuracy": clf.test_accuracy,
         "mean_confidence": q["mean_confidence"], "classes_found": classes_found(q),
         "max_class_fraction": q["max_class_fraction"], "class_histogram": q["class_histogram"]}
    return {**r, "pass": check_targets(r, res.dataset.n_classes)["met"]}


def measure_cvae(args, out: Path) -> dict:
    from probgen.metrics import train_classifier

    params = _params("cvae", args.set, {"epochs": 2} if args.quick else {})
    data = DataConfig(data=args.data, seed=args.seed)
    res, secs = _train("cvae", params, data, out, args.seed)
    ds, model = res.dataset, res.model
    clf = train_classifier(ds, seed=args.seed)
    n = 20 if args.quick else 200
    rows = {}
    for mean in (True, False):
        seed_everything(args.seed)
        conf = []
        for c in range(ds.n_classes):
            with torch.no_grad():
                x = model.sample(n, label=c, mean=mean)
            p = clf.predict_proba(x.reshape(n, *ds.shape))
            conf.append(float(p[:, c].mean()))  # confidence in the class asked for
        rows["means" if mean else "draws"] = conf
    p_real = clf.predict_proba(ds.test)  # the reference: real test images of each class
    rows["real"] = [float(p_real[ds.test_labels == c, c].mean()) for c in range(ds.n_classes)]
    return {"config": dataclasses.asdict(params), "seconds": secs, "classifier_test_accuracy": clf.test_accuracy,
            "confidence_per_class_means": rows["means"], "confidence_per_class_draws": rows["draws"],
            "confidence_per_class_real_test": rows["real"], "min_class_real_test": min(rows["real"]),
            "min_class_means": min(rows["means"]), "min_class_draws": min(rows["draws"]),
            "pass": min(rows["means"]) >= QUALITY_TARGETS["class_means"]["min_class_confidence"]}


def _bigrams(line: str) -> list[tuple[str, str]]:
    words = line.split()
    return list(zip(words, words[1:]))


def fluency(lines: list[str], seen: set) -> dict:
    """Two plain proxies of grammar (no parser offline): the share of a batch's word pairs that occur in the
    training lines (real held-out lines give the reference), and the share of lines repeating a word pair
    ("i have i have")."""
    pairs = [b for line in lines for b in _bigrams(line)]
    repeats = [len(set(_bigrams(line))) < len(_bigrams(line)) for line in lines]
    return {"bigrams_seen_in_training": sum(b in seen for b in pairs) / max(1, len(pairs)),
            "lines_repeating_a_word_pair": sum(repeats) / max(1, len(lines)),
            "mean_words": sum(len(line.split()) for line in lines) / max(1, len(lines))}


#: the decodings compared: name -> keyword arguments of SentenceVAE.sample / interpolate
DECODINGS = {"sample T=1": {"temperature": 1.0}, "sample T=0.7": {"temperature": 0.7},
             "sample T=0.7, no repeated pair": {"temperature": 0.7, "no_repeat": 2},
             "greedy": {"greedy": True}, "greedy, no repeated pair": {"greedy": True, "no_repeat": 2},
             "beam 5": {"beam": 5}, "beam 5, no repeated pair": {"beam": 5, "no_repeat": 2}}


def measure_text(args, out: Path) -> dict:
    params = _params("sentence-vae", args.set,
                     {"epochs": 1, "max_lines": 200, "hidden": 32, "embed_dim": 16, "eval_samples": 5,
                      "eval_max": 20} if args.quick else {})
    res, secs = _train("sentence-vae", params, DataConfig(seed=args.seed), out, args.seed)
    model, text = res.model, res.dataset
    report = json.loads((out / "sentence-vae.json").read_text())
    held_out = text.sentences("test")
    seen = {b for line in text.sentences("train") for b in _bigrams(line)}
    n_pairs = 2 if args.quick else 20
    paths, examples, samples, fluent = {}, {}, {}, {"held-out real lines": fluency(held_out, seen)}
    with torch.no_grad():
        for name, kw in DECODINGS.items():
            if "temperature" not in kw:  # interpolation decodes each code's likeliest line
                seed_everything(args.seed)
                lines = [model.interpolate(held_out[2 * i], held_out[2 * i + 1], 9, **kw) for i in range(n_pairs)]
                paths[name] = [len(set(path)) for path in lines]
                examples[name] = lines[:3]
            seed_everything(args.seed)
            batch = model.sample(20 if args.quick else 200, **kw)
            samples[name] = batch[:8]
            fluent[name] = fluency(batch, seen)
    distinct = paths["greedy"]
    mean_distinct = sum(distinct) / len(distinct)
    return {"config": dataclasses.asdict(params), "seconds": secs, "data": report.get("data"),
            "test": report.get("test"), "interpolation_steps": 9, "distinct_lines_per_path": distinct,
            "mean_distinct_lines": mean_distinct, "share_paths_with_5_or_more": sum(d >= 5 for d in distinct) / len(distinct),
            "mean_distinct_lines_by_decoding": {k: sum(v) / len(v) for k, v in paths.items()},
            "fluency": fluent, "examples": examples, "samples": samples, "pass": mean_distinct >= 5}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=(*PARTS, "all"), default="all")
    p.add_argument("--data", default="digits", help="image data for gan and cvae (digits, mnist, ...)")
    p.add_argument("--binarize", action="store_true", help="gan: train and judge on binarized images (as the "
                   "tour does); default grey levels, as `probgen train gan`")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field of the family (repeatable)")
    p.add_argument("--quick", action="store_true", help="tiny runs (smoke test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/quality_targets/results.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    parts = PARTS if args.part == "all" else (args.part,)
    results = {"data": args.data, "binarize": args.binarize, "seed": args.seed, "quick": args.quick, "set": args.set}
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            r = {"gan": measure_gan, "cvae": measure_cvae, "text": measure_text}[part](args, Path(tmp) / part)
            results[part] = r
            keys = {"gan": ("mean_confidence", "classes_found", "max_class_fraction"),
                    "cvae": ("min_class_means", "min_class_draws", "min_class_real_test"),
                    "text": ("mean_distinct_lines", "share_paths_with_5_or_more")}[part]
            extra = f", test {r['test']}" if part == "text" else ""
            print(f"{part}: " + ", ".join(f"{k} {r[k]:.3f}" if isinstance(r[k], float) else f"{k} {r[k]}"
                                          for k in keys) + f", {r['seconds']:.0f} s, pass {r['pass']}{extra}",
                  flush=True)
    write_json(out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

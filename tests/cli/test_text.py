"""Smoke tests of `probgen train sentence-vae`, `probgen poem`, `probgen interpolate-text`
on a poetry file the project has never seen, given as a plain path."""
from __future__ import annotations

import json

import pytest

from probgen.cli import main

POEM = ["the moon is bright tonight", "the sun is warm today", "a bird sings in the tree",
        "the wind blows over the sea", "the moon sings to the sea", "a tree grows by the sea",
        "the bird is bright today", "the sun blows warm tonight"]
TINY = ["--epochs", "2", "--embed-dim", "16", "--hidden", "24", "--z-dim", "4", "--batch-size", "16",
        "--eval-samples", "3", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("poetry")
    f = root / "my poems.txt"
    f.write_bytes(("\r\n".join(POEM * 5) + "\r\n\r\n").encode())  # CRLF, blank line at the end
    out = root / "run"
    assert main(["train", "--out", str(out), "sentence-vae", "--text", str(f), *TINY]) == 0
    return root, f, out / "sentence-vae.pt"


def test_train_writes_checkpoint_and_report(trained, capsys):
    _, _, ckpt = trained
    assert ckpt.is_file()
    report = json.loads(ckpt.with_suffix(".json").read_text())
    assert report["latent"] and len(report["history"]) == 2
    assert {"kl", "kl_weight", "recon"} <= set(report["history"][-1])
    assert {"kl", "elbo", "nll", "ppl"} <= set(report["test"]) and report["test"]["ppl"] > 1
    assert len(report["samples"]) == 5


def test_poem_sample_and_interpolate(trained, capsys):
    _, _, ckpt = trained
    capsys.readouterr()
    assert main(["poem", str(ckpt), "-n", "3"]) == 0
    assert len(capsys.readouterr().out.strip("\n").split("\n")) == 3
    assert main(["poem", str(ckpt), "-n", "2", "--lines", "4", "--temperature", "0.7"]) == 0
    poems = capsys.readouterr().out.strip("\n").split("\n\n")
    assert len(poems) == 2 and all(len(p.split("\n")) == 4 for p in poems)
    assert main(["sample", str(ckpt), "-n", "2", "--temperature", "0.5"]) == 0  # strings, no PNG
    assert len(capsys.readouterr().out.strip("\n").split("\n")) == 2
    assert main(["interpolate-text", str(ckpt), "the moon is bright", "a bird sings in the zoo",
                 "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "zoo" in out.split("\n")[0]  # the unknown word is reported
    assert len([ln for ln in out.split("\n") if ln[:4] in ("0.00", "0.33", "0.67", "1.00")]) == 4


def test_language_model_baseline_and_errors(trained, capsys):
    root, f, ckpt = trained
    out = root / "lm"
    assert main(["train", "--out", str(out), "sentence-vae", "--text", str(f), "--kl-weight", "0", *TINY]) == 0
    report = json.loads((out / "sentence-vae.json").read_text())
    assert not report["latent"] and report["test"]["estimator"] == "exact" and report["test"]["kl"] == 0
    capsys.readouterr()
    assert main(["interpolate-text", str(out / "sentence-vae.pt"), "a", "b"]) == 2
    assert "no latent code" in capsys.readouterr().err
    assert main(["poem", str(out / "sentence-vae.pt"), "-n", "2"]) == 0
    assert main(["poem", str(root / "nope.pt")]) == 2
    assert main(["poem", str(ckpt), "--temperature", "0"]) == 2
    assert main(["train", "--out", str(root / "x"), "sentence-vae", "--text", str(root / "missing.txt"),
                 *TINY]) == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert err[-1].startswith("probgen train: error:") and "missing.txt" in err[-1]


def test_beam_search_from_the_command_line(trained, capsys):
    _, _, ckpt = trained
    capsys.readouterr()
    assert main(["poem", str(ckpt), "-n", "3", "--beam", "4"]) == 0
    lines = capsys.readouterr().out.strip("\n").split("\n")
    assert len(lines) == 3 and all(line.strip() for line in lines)
    assert main(["interpolate-text", str(ckpt), "the moon is bright tonight", "a bird sings in the tree",
                 "--steps", "3", "--beam", "4"]) == 0
    assert len([ln for ln in capsys.readouterr().out.split("\n") if ln[:4] in ("0.00", "0.50", "1.00")]) == 3
    assert main(["poem", str(ckpt), "--beam", "0"]) == 2
    assert "--beam must be >= 1" in capsys.readouterr().err


def test_sample_of_a_text_model_writes_text_and_refuses_a_picture(tmp_path):
    """Issue 30: ``--out x.png`` of a sentence VAE was ignored without a word; now refused (one line), and
    ``--out FILE.txt`` writes the sentences (replaced only with --force)."""
    from pathlib import Path

    from tests.test_reliability_hostile import one_line, run_cli

    ckpt = Path(__file__).resolve().parents[1] / "fixtures" / "old_format" / "sentence-vae.pt"
    one_line(*run_cli(["sample", ckpt, "-n", "3", "--out", tmp_path / "x.png"])[:2],
             "--out", "x.png: a sentence-vae checkpoint writes text, not images", "--out FILE.txt")
    one_line(*run_cli(["sample", ckpt, "-n", "3", "--npy", tmp_path / "x.npy"])[:2], "--npy", "writes text")
    assert not list(tmp_path.iterdir())
    code, lines, out = run_cli(["sample", ckpt, "-n", "3", "--out", tmp_path / "s.txt"])
    assert code == 0 and f"wrote 3 sentences from {ckpt} to {tmp_path / 's.txt'}" in out, lines
    assert len((tmp_path / "s.txt").read_text().splitlines()) == 3
    one_line(*run_cli(["sample", ckpt, "-n", "2", "--out", tmp_path / "s.txt"])[:2], "exists", "--force")
    assert run_cli(["sample", ckpt, "-n", "2", "--out", tmp_path / "s.txt", "--force"])[0] == 0
    assert len((tmp_path / "s.txt").read_text().splitlines()) == 2
    code, _, out = run_cli(["sample", ckpt, "-n", "2"])  # no --out: printed, as before
    assert code == 0 and len(out.strip().splitlines()) == 2


def test_diagnose_of_a_text_model_says_where_its_collapse_numbers_are(tmp_path):
    """diagnose loads image data: a sentence-VAE checkpoint gets one line pointing at its collapse numbers,
    not a shape error about digits."""
    from pathlib import Path

    from tests.test_reliability_hostile import one_line, run_cli

    ckpt = Path(__file__).resolve().parents[1] / "fixtures" / "old_format" / "sentence-vae.pt"
    one_line(*run_cli(["diagnose", ckpt, "--out", tmp_path / "d"])[:2], "diagnose reads image data",
             "probgen.diagnostics.collapse")
    assert not (tmp_path / "d").exists()

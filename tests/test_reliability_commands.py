"""Issue 19, per command: bounds on every size-like option, the families each command takes, the output
policy (an existing file is replaced only with --force), compare and the tour inside a run folder,
diagnose for the CVAE and refusing latent-free models, float labels and unknown option strings via the API.

Every case refuses before any training or sampling, or runs a model of a few hundred parameters.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from probgen.recipes import guard
from probgen.runs import lock_path, manifest_path, run_folder
from tests.test_reliability_hostile import run_cli  # in-process CLI: exit code, stderr lines, stdout

FIX = Path(__file__).parent / "fixtures" / "old_format"


def one_line(argv, *expected):
    code, lines, _ = run_cli(argv)
    assert code == 2, (code, lines)
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for e in expected:
        assert e in lines[0], lines[0]
    return lines[0]


# -- 1. bounds: each says its bound ------------------------------------------------------------------
BOUND_CASES = [
    ("sample-n", ["sample", "vae.pt", "-n", 10**6], "<= 10000"),
    ("traverse-steps", ["traverse", "vae.pt", "--steps", 10**5], "--steps must be <= 100"),
    ("latent-map-steps", ["latent-map", "vae.pt", "--steps", 101], "--steps must be <= 100"),
    ("interpolate-steps", ["interpolate", "vae.pt", "--steps", 10**7], "--steps must be <= 4998"),
    ("interpolate-steps-low", ["interpolate", "vae.pt", "--steps", 1], ">= 2"),
    ("style-transfer-index", ["style-transfer", "cvae.pt", "--index", *range(100)], "<= 99"),
    ("walk-n", ["walk", "gan.pt", "--n", 10**5], "--n must be <= 2501"),
    ("walk-steps", ["walk", "gan.pt", "--steps", 10**7], "--steps must be <= 5000"),
    ("walk-product", ["walk", "gan.pt", "--n", 100, "--steps", 1000], "(--n - 1) × --steps must be <= 5000"),
    ("complete-n", ["complete", "pixel.pt", "-n", 10**6], "<= 10000"),
    ("complete-product", ["complete", "pixel.pt", "-n", 5000, "--index", 0, 1, 2], "<= 10000"),
    ("complete-rows", ["complete", "pixel.pt", "--rows", 999], "--rows must lie in 0..8"),
    ("complete-index", ["complete", "pixel.pt", "--index", 99999], "the test split has"),
    ("poem-n", ["poem", "sentence-vae.pt", "-n", 10**7], "-n must be <= 10000"),
    ("poem-lines", ["poem", "sentence-vae.pt", "-n", 100, "--lines", 1000], "-n × --lines must be <= 10000"),
    ("poem-max-len", ["poem", "sentence-vae.pt", "--max-len", 10**8], "--max-len must be <= 1000"),
    ("poem-max-len-0", ["poem", "sentence-vae.pt", "--max-len", 0], "--max-len must be >= 1"),
    ("interpolate-text-steps", ["interpolate-text", "sentence-vae.pt", "a", "b", "--steps", 10**8], "<= 10000"),
    ("diagnose-k", ["diagnose", "vae.pt", "--num-samples", 10**8], "--num-samples must be <= 100000"),
    ("diagnose-draws", ["diagnose", "vae.pt", "--draws", 10**8], "--draws must be <= 100000"),
    ("diagnose-chains", ["diagnose", "vae.pt", "--chains", 1000], "--chains must be <= 64"),
    ("compare-k", ["compare", "--num-samples", 10**8], "--num-samples must be <= 100000"),
    ("gan-toy-steps", ["gan-toy", "--steps", 10**9], "--steps must be <= 10000000"),
    ("gan-toy-snapshots", ["gan-toy", "--snapshots", 10**4], "--snapshots must be <= 100"),
    ("gan-eval-n", ["gan-eval", "gan.pt", "-n", 10**9], "-n must be <= 100000"),
    ("sample-label", ["sample", "cvae.pt", "--label", 99], "0..9"),
    ("traverse-label", ["traverse", "cvae.pt", "--label", -1], "0..9"),
    ("complete-label", ["complete", "pixel.pt", "--label", 3], "not class-conditional"),
]


@pytest.mark.parametrize("case", BOUND_CASES, ids=[c[0] for c in BOUND_CASES])
def test_every_size_option_has_a_bound_that_the_message_says(case, tmp_path):
    _, argv, expected = case
    argv = [str(FIX / a) if str(a).endswith(".pt") else a for a in argv]
    folder = argv[0] in ("diagnose", "compare", "gan-toy", "gan-eval")
    out = [] if argv[0] in ("poem", "interpolate-text") else ["--out", tmp_path / ("o" if folder else "o.png")]
    one_line(argv + out, expected)
    assert not (tmp_path / "o.png").exists()


def test_sentence_vae_max_len_zero_keeps_up_to_the_bound():
    from probgen.recipes.text import SentenceVAEConfig

    guard.check_sizes(SentenceVAEConfig(max_len=0))
    with pytest.raises(ValueError, match="--max-len must be <= 1000"):
        guard.check_sizes(SentenceVAEConfig(max_len=10**6))


@pytest.mark.parametrize("value", [2.5, "3", 2.0])
def test_counts_must_be_whole_numbers(value):
    with pytest.raises(ValueError, match="whole number"):
        guard.count("--steps", value, 2, 100)


# -- 2. the families each command takes -----------------------------------------------------------
KIND_CASES = [
    ("latent-map", "sentence-vae"), ("traverse", "sentence-vae"), ("interpolate", "sentence-vae"),
    ("walk", "sentence-vae"), ("walk", "gmm"), ("walk", "pixel"), ("walk", "cvae"), ("traverse", "gan"),
    ("style-transfer", "vae"), ("complete", "vae"), ("poem", "vae"), ("interpolate-text", "gan"),
    ("gan-eval", "sentence-vae"), ("latent-map", "gmm"), ("problems", "gan"),
    ("diagnose", "pixel"), ("diagnose", "gan"), ("diagnose", "autoencoder"),
]
_POSITIONAL = {"interpolate-text": ["a", "b"]}


@pytest.mark.parametrize("command,kind", KIND_CASES, ids=[f"{c}-{k}" for c, k in KIND_CASES])
def test_a_command_refuses_a_family_it_cannot_use_and_names_those_it_takes(command, kind, tmp_path):
    argv = [command, FIX / f"{kind}.pt", *_POSITIONAL.get(command, [])]
    if command not in ("poem", "interpolate-text"):
        argv += ["--out", tmp_path / ("o.png" if command not in ("diagnose", "gan-eval", "problems") else "o")]
    line = one_line(argv, f"cannot use a{'n' if kind[0] in 'aeiou' else ''} {kind} checkpoint", "it takes")
    assert ", ".join(guard.accepts(command)) in line
    assert not any(tmp_path.iterdir())


def test_diagnose_says_why_a_model_without_latents_is_refused():
    with pytest.raises(ValueError, match="no latent variables"):
        guard.check_kind("diagnose", "pixel", "p.pt")


def test_every_command_in_the_tables_exists():
    from probgen.cli import build_parser

    commands = set(next(a for a in build_parser()._actions if a.choices and "sample" in a.choices).choices)
    assert set(guard.NEEDS) <= commands and set(guard.OUTPUTS) <= commands
    assert set(guard.COMMAND_OF.values()) <= set(guard.NEEDS)


def test_an_unknown_kind_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown model kind 'flow'"):
        guard.check_kind("sample", "flow", "f.pt")


def test_the_api_refuses_a_sentence_vae_for_a_picture(tmp_path):
    from probgen.recipes.vae import TraverseConfig, traverse

    with pytest.raises(ValueError, match="traverse cannot use a sentence-vae"):
        traverse(TraverseConfig(checkpoint=str(FIX / "sentence-vae.pt"), out=str(tmp_path / "t.png")))


def test_a_plain_language_model_is_refused_by_diagnose(tmp_path):
    from probgen.models import SentenceVAE

    path = SentenceVAE(10, 4, 4, 2, latent=False).save(tmp_path / "lm.pt")
    one_line(["diagnose", path, "--out", tmp_path / "d"], "plain language model", "no latent code")


def test_diagnose_covers_the_cvae_conditional_on_labels(tmp_path):
    code, lines, out = run_cli(["diagnose", FIX / "cvae.pt", "--out", tmp_path / "d", "--points", "4",
                                "--num-samples", "8", "--draws", "4", "--nuts", "--quiet"])
    assert code == 0, lines
    assert "conditional on the test labels" in out
    import json

    assert json.loads((tmp_path / "d" / "summary.json").read_text())["conditional_on"] == "test labels"


# -- 3. the output policy: nothing is replaced without --force -------------------------------------
FILE_COMMANDS = [
    ("sample", "vae.pt", [], "o.png"),
    ("sample", "vae.pt", ["--npy", "{d}/o.npy"], "o.npy"),
    ("traverse", "vae.pt", [], "o.png"),
    ("latent-map", "vae.pt", [], "o_scatter.png"),
    ("interpolate", "vae.pt", [], "o.png"),
    ("style-transfer", "cvae.pt", [], "o.png"),
    ("walk", "gan.pt", [], "o.json"),
    ("walk", "gan.pt", [], "o_spherical.png"),
    ("complete", "pixel.pt", [], "o.png"),
]


@pytest.mark.parametrize("command,ckpt,extra,existing", FILE_COMMANDS,
                         ids=[f"{c[0]}-{c[3]}" for c in FILE_COMMANDS])
def test_a_picture_command_never_replaces_a_file_without_force(command, ckpt, extra, existing, tmp_path):
    (tmp_path / existing).write_bytes(b"mine")
    extra = [e.replace("{d}", str(tmp_path)) for e in extra]
    one_line([command, FIX / ckpt, "--out", tmp_path / "o.png", *extra], "exists", "--force")
    assert (tmp_path / existing).read_bytes() == b"mine"


FOLDER_COMMANDS = [("gan-eval", [FIX / "gan.pt"], "eval.json"), ("why-vae", [], "why_vae.png"),
                   ("gan-toy", [], "toy.json")]


@pytest.mark.parametrize("command,args,existing", FOLDER_COMMANDS, ids=[c[0] for c in FOLDER_COMMANDS])
def test_folder_commands_never_replace_their_files_without_force(command, args, existing, tmp_path):
    (tmp_path / existing).write_bytes(b"mine")
    one_line([command, *args, "--out", tmp_path], "exists", "--force")
    assert (tmp_path / existing).read_bytes() == b"mine"


def test_force_replaces_and_a_second_run_without_it_refuses(tmp_path):
    argv = ["sample", FIX / "vae.pt", "-n", "4", "--out", tmp_path / "s.png"]
    assert run_cli(argv)[0] == 0
    one_line(argv, "exists")
    assert run_cli(argv + ["--force"])[0] == 0


def test_force_never_writes_through_a_symlink(tmp_path):
    (tmp_path / "real.png").write_bytes(b"mine")
    os.symlink(tmp_path / "real.png", tmp_path / "s.png")
    one_line(["sample", FIX / "vae.pt", "-n", "4", "--out", tmp_path / "s.png", "--force"], "symbolic link")
    assert (tmp_path / "real.png").read_bytes() == b"mine"


def test_claim_outputs_api(tmp_path):
    from probgen.runs import claim_outputs

    (tmp_path / "a.png").write_bytes(b"x")
    claim_outputs([None, tmp_path / "b.png"])
    with pytest.raises(ValueError, match="exists"):
        claim_outputs([tmp_path / "a.png"])
    claim_outputs([tmp_path / "a.png"], force=True)


# -- 4. compare and the tour inside a run folder ------------------------------------------------------
def _compare_cfg(out, **run):
    from probgen.recipes.compare import CompareConfig
    from probgen.recipes.config import RunConfig

    return CompareConfig(run=RunConfig(out=str(out), quiet=True, **run))


def test_compare_refuses_a_folder_another_run_is_writing(tmp_path):
    compare = importlib.import_module("probgen.recipes.compare").compare

    lock_path(tmp_path, "compare").write_text(f"{os.getpid()} {os.uname().nodename}\n")
    with pytest.raises(ValueError, match="another probgen run"):
        compare(_compare_cfg(tmp_path))


def test_compare_killed_half_way_leaves_no_manifest_and_a_finished_one_needs_force(tmp_path, monkeypatch):
    C = importlib.import_module("probgen.recipes.compare")

    def killed(cfg):
        (Path(cfg.run.out) / "vae.pt").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "_compare", killed)
    with pytest.raises(KeyboardInterrupt):
        C.compare(_compare_cfg(tmp_path))
    assert not manifest_path(tmp_path, "compare").exists() and not lock_path(tmp_path, "compare").exists()
    monkeypatch.setattr(C, "_compare", lambda cfg: "done")
    assert C.compare(_compare_cfg(tmp_path)) == "done"
    assert manifest_path(tmp_path, "compare").is_file()
    with pytest.raises(ValueError, match="finished compare run"):
        C.compare(_compare_cfg(tmp_path))
    assert C.compare(_compare_cfg(tmp_path, force=True)) == "done"


@pytest.mark.parametrize("setup,ok", [("user-file", False), ("empty", True), ("own-tour", True),
                                      ("killed-tour", True), ("user-file-force", True)])
def test_the_tour_refuses_a_folder_it_did_not_make(setup, ok, tmp_path, monkeypatch):
    from probgen.report import tour as T

    monkeypatch.setattr(T, "_tour", lambda cfg, out, *_: SimpleNamespace(lines=["toured"]))
    if setup.startswith("user-file"):
        (tmp_path / "thesis.tex").write_text("mine")
    elif setup == "own-tour":
        with run_folder(tmp_path, name="tour", fresh=True):
            (tmp_path / "report.html").write_text("old")
    elif setup == "killed-tour":  # kill -9: the lock of a dead pid is left, no manifest
        (tmp_path / "report.html").write_text("half")
        lock_path(tmp_path, "tour").write_text(f"999999999 {os.uname().nodename}\n")
    argv = ["tour", "--out", tmp_path] + (["--force"] if setup.endswith("force") else [])
    if ok:
        code, lines, out = run_cli(argv)
        assert code == 0, lines
        assert manifest_path(tmp_path, "tour").is_file()
    else:
        one_line(argv, "not empty", "not made by probgen tour")
    if setup.startswith("user-file"):
        assert (tmp_path / "thesis.tex").read_text() == "mine"


# -- 5. labels and option strings through the API --------------------------------------------------
@pytest.fixture(scope="module")
def cvae():
    from probgen.models import load

    return load(FIX / "cvae.pt")


def test_fractional_float_labels_are_refused(cvae):
    x = torch.zeros(3, cvae.x_dim)
    with pytest.raises(ValueError, match="whole class numbers .* got 2.5"):
        cvae.prepare(x, torch.tensor([1.0, 2.5, 3.0]))


def test_whole_float_labels_are_read_as_classes(cvae):
    _, y = cvae.prepare(torch.zeros(3, cvae.x_dim), torch.tensor([1.0, 2.0, 3.0]))
    assert y.dtype == torch.long and y.tolist() == [1, 2, 3]


@pytest.mark.parametrize("label", [2.5, torch.tensor([1.5, 2.0])])
def test_float_labels_to_sample_are_refused(cvae, label):
    with pytest.raises(ValueError, match="whole class numbers"):
        cvae.sample(2, label=label)


OPTION_CASES = [
    ("vae-elbo", lambda: __import__("probgen.models", fromlist=["VAE"]).VAE(4, z_dim=2, hidden=(4,), elbo="magic"),
     "unknown elbo 'magic'"),
    ("cvae-elbo", lambda: __import__("probgen.models", fromlist=["CVAE"]).CVAE(4, 2, z_dim=2, hidden=(4,), elbo="magic"),
     "unknown elbo 'magic'"),
    ("config-elbo", lambda: guard.check_choices(__import__("probgen.recipes.models", fromlist=["x"]).VAEConfig(
        elbo="magic")), "--elbo 'magic': use one of"),
    ("sentence-level", lambda: guard.check_choices(__import__("probgen.recipes.text", fromlist=["x"]).SentenceVAEConfig(
        level="bytes")), "--level 'bytes'"),
    ("complete-split", lambda: guard.check_sizes(__import__("probgen.recipes.pixel", fromlist=["x"]).CompleteConfig(
        split="everything")), "--split 'everything'"),
]


@pytest.mark.parametrize("case", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_unknown_option_strings_through_the_api_are_one_line(case):
    _, call, expected = case
    with pytest.raises(ValueError) as info:
        call()
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_train_refuses_an_unknown_elbo_before_loading_data(tmp_path, monkeypatch):
    T = importlib.import_module("probgen.recipes.train")
    from probgen.recipes.config import RunConfig
    from probgen.recipes.models import VAEConfig

    monkeypatch.setattr(T, "load_data", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ValueError, match="--elbo 'magic'"):
        T.train(T.TrainConfig(model="vae", params=VAEConfig(elbo="magic"), run=RunConfig(out=str(tmp_path))))
    assert not any(tmp_path.iterdir())

"""The one checkpoint format (probgen/io.py): format 2 written in one place, format 1 (the
main before issue 15) still read, run files named in one place, old checkpoints scored the same."""
from __future__ import annotations

import json
from pathlib import Path

import pyro
import pytest
import torch

import probgen.models
from probgen import data
from probgen.evaluate import score
from probgen.io import CHECKPOINT_FORMAT, last_path, load_checkpoint, run_files, save_checkpoint
from probgen.models import VAE

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "old_format"
SCORES = json.loads((FIXTURES / "scores.json").read_text())
KINDS = [k for k in SCORES if not k.startswith("_")]


def test_run_files_are_named_in_one_place(tmp_path):
    f = run_files(tmp_path, "vae")
    assert f.checkpoint == tmp_path / "vae.pt" and f.last == tmp_path / "vae.last.pt"
    assert f.out == tmp_path and f.name == "vae" and f.files == (f.checkpoint, f.last) and not f.exists()
    assert last_path(tmp_path / "a" / "m.pt") == tmp_path / "a" / "m.last.pt"
    assert run_files(str(tmp_path), "sentence-vae").last == tmp_path / "sentence-vae.last.pt"
    VAE(4, z_dim=2, hidden=(3,)).save(f.checkpoint)
    assert f.exists()
    for bad in ("", "a/b", "..", ".hidden", "vae.pt", None):
        with pytest.raises(ValueError, match="plain name"):
            run_files(tmp_path, bad)


def test_one_loader_for_every_checkpoint(tmp_path):
    """``Story.load`` is the loader; ``probgen.load`` and ``probgen.models.load`` call it."""
    from probgen.story import Story

    vae = VAE(4, z_dim=2, hidden=(3,))
    vae.save(tmp_path / "v.pt")
    for loaded in (Story.load(tmp_path / "v.pt"), VAE.load(tmp_path / "v.pt"), probgen.load(tmp_path / "v.pt"),
                   probgen.models.load(tmp_path / "v.pt")):
        assert type(loaded) is VAE and not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), vae.state_dict().values()))
    with pytest.raises(ValueError, match=r"v\.pt: checkpoint holds a 'vae' model, not 'gmm'"):
        probgen.models.GMM.load(tmp_path / "v.pt")
    with pytest.raises(ValueError, match="load it without story="):
        probgen.load(tmp_path / "v.pt", story=(lambda x: None, lambda x: None))
    save_checkpoint(tmp_path / "u.pt", kind="no_such_kind", config={}, state_dict={})
    with pytest.raises(ValueError, match="unknown model kind 'no_such_kind'"):
        probgen.load(tmp_path / "u.pt")
    with pytest.raises(ValueError, match="device 'tpu9'"):
        Story.load(tmp_path / "v.pt", device="tpu9")


def test_format_2_round_trip(tmp_path):
    spec = {"name": "digits", "data_dir": None, "binarize": True, "dequantize": False, "seed": 0,
            "splits": (1000, 200, 597)}
    p = save_checkpoint(tmp_path / "m.pt", kind="vae", config={"x_dim": 4, "hidden": (3,)},
                        state_dict={"w": torch.ones(2)}, optimizer={"state": {0: {"step": torch.tensor(3.0)}}},
                        trainer={"epoch": 4, "history": [{"train_loss": 1.0}]}, data=spec, extra={"note": "x"})
    payload = load_checkpoint(p)
    assert payload["probgen"]["format"] == CHECKPOINT_FORMAT == 2 and "version" in payload["probgen"]
    assert payload["config"] == {"x_dim": 4, "hidden": [3]}
    assert payload["data"] == {**spec, "splits": [1000, 200, 597]}
    assert payload["trainer"]["epoch"] == 4 and payload["optimizer"]["state"][0]["step"] == 3
    assert payload["extra"] == {"note": "x"}
    raw = torch.load(p, weights_only=True)
    assert set(raw) == {"probgen", "kind", "config", "state_dict", "optimizer", "trainer", "data", "extra"}


def test_read_once_reads_each_file_once_and_hands_out_fresh_copies(tmp_path, monkeypatch):
    import probgen.io as io

    disk = []
    read = io._read_checkpoint
    monkeypatch.setattr(io, "_read_checkpoint", lambda path, loc: disk.append(path.name) or read(path, loc))
    p = save_checkpoint(tmp_path / "m.pt", kind="vae", config={"x_dim": 4}, state_dict={"w": torch.ones(2)},
                        extra={"note": "x"})
    with io.read_once():
        a, b = load_checkpoint(p), load_checkpoint(tmp_path / "." / "m.pt")  # the same file: read once
        assert disk == ["m.pt"] and a == {**a, "extra": {"note": "x"}}
        a["extra"]["note"] = "changed"
        a["state_dict"]["w"].add_(1)
        c = load_checkpoint(p)  # every caller gets its own dicts and tensors
        assert c["extra"] == {"note": "x"} and torch.equal(c["state_dict"]["w"], torch.ones(2))
        assert b["state_dict"]["w"] is not c["state_dict"]["w"]
        save_checkpoint(p, kind="vae", config={"x_dim": 4}, state_dict={"w": torch.zeros(2)})  # rewritten: read again
        assert torch.equal(load_checkpoint(p)["state_dict"]["w"], torch.zeros(2)) and disk == ["m.pt", "m.pt"]
        with pytest.raises(FileNotFoundError):
            load_checkpoint(tmp_path / "missing.pt")
    load_checkpoint(p)
    load_checkpoint(p)  # outside a block: every call reads the file
    assert len(disk) == 4


def test_cli_reads_a_checkpoint_once_per_command(tmp_path, monkeypatch, capsys):
    import probgen.io as io
    from probgen.cli import main

    ckpt = tmp_path / "run" / "vae.pt"
    assert main(["train", "vae", "--epochs", "1", "--hidden", "8", "--z-dim", "2", "--out", str(ckpt.parent),
                 "--quiet"]) == 0
    disk = []
    read = io._read_checkpoint
    monkeypatch.setattr(io, "_read_checkpoint", lambda path, loc: disk.append(path.name) or read(path, loc))
    for argv in (["sample", str(ckpt), "-n", "4", "--out", str(tmp_path / "s.png")],
                 ["traverse", str(ckpt), "--out", str(tmp_path / "t.png")]):
        disk.clear()
        assert main(argv) == 0, capsys.readouterr()
        assert disk == ["vae.pt"], argv  # was 3: the CLI's kind check, the data spec, the model


def test_story_save_records_the_data_and_loading_exposes_it(tmp_path):
    vae = VAE(4, z_dim=2, hidden=(3,))
    spec = {"name": "digits", "data_dir": None, "binarize": True, "dequantize": False, "seed": 0,
            "splits": [1, 1, 1]}
    vae.save(tmp_path / "v.pt", data=spec, extra={"fit_seconds": 1.5})
    back = probgen.models.load(tmp_path / "v.pt")
    assert back.checkpoint_data == spec and back.checkpoint_extra == {"fit_seconds": 1.5}
    back.save(tmp_path / "again.pt")  # the data spec travels with the model; the file's extra does not
    assert load_checkpoint(tmp_path / "again.pt")["data"] == spec
    assert load_checkpoint(tmp_path / "again.pt")["extra"] == {}
    VAE(4, z_dim=2, hidden=(3,)).save(tmp_path / "none.pt")
    assert probgen.models.load(tmp_path / "none.pt").checkpoint_data is None


def test_damaged_format_2_fields_are_refused(tmp_path):
    p = VAE(4, z_dim=2, hidden=(3,)).save(tmp_path / "v.pt")
    payload = torch.load(p, weights_only=True)
    torch.save(dict(payload, trainer=[1, 2]), tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="damaged probgen checkpoint: 'trainer'"):
        load_checkpoint(tmp_path / "bad.pt")


# -- old checkpoints (format 1, written by commit a328a29: tests/fixtures/make_old_checkpoints.py) -------
@pytest.mark.parametrize("kind", KINDS)
def test_old_checkpoint_loads_and_is_upgraded(kind):
    path = FIXTURES / f"{kind}.pt"
    assert path.stat().st_size < 100 * 1024
    assert torch.load(path, weights_only=True)["probgen"]["format"] == 1
    payload = load_checkpoint(path)
    assert payload["probgen"] == {**payload["probgen"], "format": 2, "upgraded_from": 1}
    assert payload["data"] is None and payload["kind"] == kind
    model = probgen.models.load(path)
    assert model.kind == kind and model.checkpoint_data is None


def test_old_resume_files_move_their_training_state_out_of_extra():
    svi = load_checkpoint(FIXTURES / "vae.last.pt")
    assert set(svi["trainer"]) >= {"epoch", "history", "best_state_dict", "rng", "best_val"}
    assert svi["optimizer"] and "optim" not in svi["extra"] and "epoch" not in svi["extra"]
    gan = load_checkpoint(FIXTURES / "gan.last.pt")
    assert set(gan["optimizer"]) == {"d", "g"} and gan["optimizer"]["d"]["state"]
    assert set(gan["trainer"]) >= {"epoch", "history", "steps", "rng"} and gan["extra"] == {}
    best = load_checkpoint(FIXTURES / "vae.pt")  # a best-model file keeps its extra
    assert best["optimizer"] is None and best["trainer"] is None


@pytest.fixture(scope="module")
def fixture_test_data():
    meta = SCORES["_meta"]
    ds = data.load(meta["data"], binarize=meta["binarize"], seed=meta["seed"])
    return ds.test[:meta["n_test"]], ds.test_labels[:meta["n_test"]]


@pytest.mark.parametrize("kind", KINDS)
def test_old_checkpoint_scores_as_the_old_code_did(kind, fixture_test_data):
    """Exact models give the old numbers; the estimators with the same seed too (the draws are
    the same), checked loosely so that a change of chunking cannot fail it by noise alone."""
    old = SCORES[kind]
    model = probgen.models.load(FIXTURES / f"{kind}.pt")
    x, y = fixture_test_data
    pyro.set_rng_seed(1)
    with torch.no_grad():
        if kind == "sentence-vae":
            values = model.log_prob(SCORES["_meta"]["sentences"], num_samples=old["k"])
        elif kind == "gan":
            values = model.log_prob(x, num_samples=old["k"], seed=0)
        else:
            s = score(model, x, y=y, num_samples=old["k"] or 1)
            assert s.estimator == old["estimator"] or (kind == "autoencoder" and s.estimator.startswith("IS"))
            values = s.values
    values = values.double()
    ref = torch.tensor(old["values"], dtype=torch.float64)
    assert torch.isfinite(values).all() and values.shape == ref.shape
    if old["estimator"] == "exact":
        assert torch.allclose(values, ref, atol=1e-4)
    else:
        assert abs(float(values.mean()) - old["mean"]) < 1.0


def test_old_cvae_conditional_column_matches(fixture_test_data):
    x, y = fixture_test_data
    model = probgen.models.load(FIXTURES / "cvae.pt")
    pyro.set_rng_seed(1)
    s = score(model, x, y=y, num_samples=SCORES["cvae"]["k"])
    assert s.estimator == "IWAE, marginal over labels"
    assert abs(float(s.conditional.mean()) - sum(SCORES["cvae"]["conditional"]) / len(x)) < 1.0


@pytest.mark.parametrize("kind", ["cvae", "vae", "gmm"])
def test_one_number_for_one_checkpoint_and_seed(kind, fixture_test_data):
    """compare and the tour (``recipes.compare.score_model``), the experiments and the Python
    API (``probgen.score``) all call ``evaluate.score``: the same checkpoint and seed give the
    same column."""
    from types import SimpleNamespace

    import probgen
    from probgen.recipes.compare import score_model

    x, y = fixture_test_data
    ds = SimpleNamespace(test=x, test_labels=y, val=x, dequantized=False)
    model = probgen.models.load(FIXTURES / f"{kind}.pt")
    pyro.set_rng_seed(7)
    row = score_model(model, ds, num_samples=20, seed=0)
    pyro.set_rng_seed(7)
    api = probgen.score(model, x, y=y if getattr(model, "needs_labels", False) else None, num_samples=20)
    assert torch.allclose(row["values"], api.values.double())
    assert row["estimator"] == api.estimator and row["num_samples"] == api.k
    if kind == "cvae":
        assert api.estimator == "IWAE, marginal over labels" and "marginal" in row["quantity"]


def test_model_size_check_counts_a_vocabulary_against_the_other_sizes():
    """A PTB-sized sentence VAE (10,002 words) loads; a vocabulary claim the file cannot back is refused."""
    import pytest
    import torch

    from probgen.io import check_model_size

    cfg = {"vocab_size": 10002, "embed_dim": 353, "hidden": 191, "z_dim": 13, "max_len": 80}
    check_model_size(cfg, {"w": torch.zeros(4_500_000)})  # the real model: ~4.5 M parameters
    with pytest.raises(ValueError, match="refusing to build"):
        check_model_size({**cfg, "vocab_size": 10**9}, {"w": torch.zeros(4_500_000)})
    with pytest.raises(ValueError, match="refusing to build"):
        check_model_size({**cfg, "hidden": 60000}, {"w": torch.zeros(4_500_000)})

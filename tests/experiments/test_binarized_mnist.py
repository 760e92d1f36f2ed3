import json

import pytest

from ._run import run_quick, run_script


def test_binarized_mnist_quick_writes_every_row_and_resumes(tmp_path, data_dir):
    code, out, argv = run_quick("binarized_mnist", tmp_path, data_dir)
    assert code == 0
    table = json.loads((out / "likelihood_table.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    assert table["quick"] is True
    for name in ("gmm", "vae", "iwae-k50", "hierarchical", "cvae", "pixelcnn", "pixelrnn", "gan"):
        r = rows[name]
        assert 0 < r["nll"] < 800 and r["stderr"] >= 0 and r["n_test"] == 200, r
        assert (out / r["samples"]).is_file() and (out / r["curve"]).is_file()
        assert r["epochs"] >= 1 and r["seed"] == 0 and r["probgen_version"]
    assert rows["gmm"]["estimator"] == "exact" and rows["vae"]["estimator"] == "IWAE" and rows["vae"]["k"] == 20
    assert rows["vae"]["khat_share"] is not None and rows["vae"]["stderr"] > 0
    assert rows["iwae-k50"]["train_k"] == 50 and rows["iwae-k50"]["estimator"] == "IWAE"
    assert rows["hierarchical"]["estimator"] == "IWAE" and rows["hierarchical"]["khat_share"] is not None
    assert rows["pixelcnn"]["estimator"] == rows["pixelrnn"]["estimator"] == "exact"
    assert rows["cvae"]["estimator"].endswith("marginal over labels")
    assert rows["gan"]["estimator"] == "Parzen"
    assert rows["iwae-k50"]["published_nll"] == 87.10 and rows["vae"]["published_nll"] == 88.71
    md = (out / "table.md").read_text()
    assert "137.64" in md and "not a result" in md
    assert "train wall-h (device)" in md and "CPU-h" not in md  # every time says where it was measured
    assert all(rows[n]["device"] and rows[n]["torch_threads"] >= 1 and rows[n]["train_wall_hours"] >= 0 for n in rows)
    assert not (out / "vae.pt").exists()  # quick runs never overwrite the committed checkpoint
    assert (out / "curves.png").is_file()  # the learning curves, one figure

    # a second invocation resumes (more SVI epochs), and --minutes 0 only scores
    before = json.loads((out / "curves" / "vae.json").read_text())["history"]
    assert run_script("binarized_mnist", argv + ["--models", "vae", "--lr", "2.5e-4"]) == 0  # a step decay
    after = json.loads((out / "curves" / "vae.json").read_text())["history"]
    assert len(after) > len(before) and after[: len(before)] == before
    assert {r["lr"] for r in before} == {1e-3} and {r["lr"] for r in after[len(before):]} == {2.5e-4}
    assert run_script("binarized_mnist", argv + ["--models", "gmm", "--minutes", "0"]) == 0


def test_binarized_mnist_rows_not_run_say_so(tmp_path, data_dir):
    code, out, _ = run_quick("binarized_mnist", tmp_path, data_dir, "--models", "iwae", "--iwae-train-k", "3",
                             "--refit-guide", "1", "--refit-k", "2")
    assert code == 0
    rows = {r["name"]: r for r in json.loads((out / "likelihood_table.json").read_text())["rows"]}
    assert rows["iwae-k3"]["train_k"] == 3 and rows["iwae-k3"]["nll"] > 0
    assert rows["iwae-k3"]["guide_refit"]["k"] == 2 and "guide refit" in rows["iwae-k3"]["status"]
    for name in ("iwae-k50", "hierarchical", "pixelcnn", "pixelrnn", "gmm"):  # never a number for a row not run
        assert rows[name]["nll"] is None and rows[name]["status"].startswith("not run"), rows[name]
    assert "s/epoch" in rows["pixelcnn"]["status"] and "k=5" in rows["iwae-k50"]["status"]


def test_binarized_mnist_bad_input(tmp_path, data_dir):
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", ["--models", "nope", "--out", str(tmp_path), "--work", str(tmp_path / "work")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", ["--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path),
                                       "--work", str(tmp_path / "work")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", ["--iwae-train-k", "1", "--out", str(tmp_path), "--work", str(tmp_path / "work")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", ["--minutes", "-1", "--out", str(tmp_path), "--work", str(tmp_path / "work")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", ["--lr", "0", "--out", str(tmp_path), "--work", str(tmp_path / "work")])
    assert e.value.code == 2


def test_binarized_mnist_status_names_each_learning_rate():
    from ._run import script_module

    bm = script_module("binarized_mnist")
    hist = [{"epoch": 1, "val_loss": 3.0}, {"epoch": 2, "val_loss": 2.0, "lr": 5e-4}, {"epoch": 3, "val_loss": 1.0,
                                                                                         "lr": 5e-4}]
    assert bm._lr_steps(hist) == [(1, None), (2, 5e-4)]
    assert "Adam lr 0.002 from epoch 1, then 0.0005 from epoch 2" in bm._status("pixelrnn", None, hist, False)
    assert "Adam lr" not in bm._status("pixelrnn", None, hist[1:], False)


def test_binarized_mnist_table_says_where_each_time_was_measured(tmp_path):
    """A GPU row's time is labelled with its device, never as CPU time; a CPU row with its threads."""
    from ._run import script_module

    bm = script_module("binarized_mnist")
    row = {"nll": 90.0, "stderr": 0.2, "n_test": 100, "estimator": "exact", "k": None, "n_params": 10, "epochs": 3,
           "status": bm._status("pixelcnn", None, [{"epoch": e, "val_loss": 1.0 / e} for e in (1, 2, 3)], False)}
    rows = {"pixelcnn": {**row, "name": "pixelcnn", "train_wall_hours": 0.01, "seconds_per_epoch": 11.0,
                         "device": "cuda:0", "torch_threads": 1},
            "pixelrnn": {**row, "name": "pixelrnn", "train_wall_hours": 1.5, "seconds_per_epoch": 226.0,
                         "device": "cpu", "torch_threads": 1}}
    bm.write_table(tmp_path, rows, {"probgen_version": "0", "seed": 0})
    md = (tmp_path / "table.md").read_text()
    gpu = next(line for line in md.splitlines() if line.startswith("| pixelcnn"))
    cpu = next(line for line in md.splitlines() if line.startswith("| pixelrnn"))
    assert "train wall-h (device)" in md and "CPU-h" not in md
    assert "0.01 (cuda:0)" in gpu and "11 s wall per epoch on cuda:0" in gpu and "CPU" not in gpu
    assert "1.50 (cpu×1)" in cpu and "226 s wall per epoch on cpu×1" in cpu


def test_binarized_mnist_train_valid_and_refined_scoring(tmp_path, data_dir):
    code, out, argv = run_quick("binarized_mnist", tmp_path, data_dir, "--models", "vae", "--train-valid",
                                "--refine", "3")
    assert code == 0
    row = {r["name"]: r for r in json.loads((out / "likelihood_table.json").read_text())["rows"]}["vae"]
    assert row["train_size"] == 2000 + 500  # quick: 2k training images, plus the 500 validation images
    assert row["estimator"] == "IWAE, q refined 3 steps" and row["refine_steps"] == 3
    assert "train + valid" in row["status"] and "fitted to each test image" in row["status"]
    # the resume file remembers its training set: resuming or scoring without the flag is refused
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", argv + ["--models", "vae"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", argv + ["--models", "vae", "--refine", "-1"])
    assert e.value.code == 2


@pytest.mark.parametrize("case", ["minutes nan", "minutes inf", "work is a file", "out is a file", "out is /dev/null",
                                  "work is /dev/null", "work under a file", "minutes 0 without a checkpoint"])
def test_binarized_mnist_bad_runs_are_one_line_before_the_data(tmp_path, capsys, monkeypatch, case):
    """Each refused in one line, exit 2, no traceback, before the data is read (no data folder needed) and
    without writing anything (the default --work/--out are never touched: both always point into tmp_path)."""
    (tmp_path / "a_file").write_text("mine\n")
    work, out = tmp_path / "work", tmp_path / "out"
    extra = {"minutes nan": ["--minutes", "nan"], "minutes inf": ["--minutes", "inf"],
             "work is a file": ["--work", str(tmp_path / "a_file")],
             "out is a file": ["--out", str(tmp_path / "a_file")],
             "out is /dev/null": ["--out", "/dev/null"], "work is /dev/null": ["--work", "/dev/null"],
             "work under a file": ["--work", str(tmp_path / "a_file" / "sub")],
             "minutes 0 without a checkpoint": ["--minutes", "0", "--models", "vae"]}[case]
    monkeypatch.delenv("PROBGEN_DATA_DIR", raising=False)
    with pytest.raises(SystemExit) as e:
        run_script("binarized_mnist", ["--work", str(work), "--out", str(out), "--data-dir", str(tmp_path / "none"),
                                       *extra])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    named = {"minutes nan": "--minutes", "minutes inf": "--minutes", "minutes 0 without a checkpoint": "vae.pt"}
    assert named.get(case, extra[1]) in err, err
    assert (tmp_path / "a_file").read_text() == "mine\n" and not work.exists() and not out.exists()


def test_a_quick_run_never_defaults_to_the_committed_results():
    """--quick without --work/--out gets folders of its own: a smoke run once replaced the committed table."""
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
    from _common import add_run_flags, settle_folders

    ap = argparse.ArgumentParser()
    add_run_flags(ap, work="runs/x", out="experiments/results/x", outputs="table", quick="tiny")
    quick = settle_folders(ap.parse_args(["--quick"]))
    assert (quick.work, quick.out) == ("runs/x-quick", "runs/x-quick/results")
    full = settle_folders(ap.parse_args([]))
    assert (full.work, full.out) == ("runs/x", "experiments/results/x")
    given = settle_folders(ap.parse_args(["--quick", "--out", "o", "--work", "w"]))
    assert (given.work, given.out) == ("w", "o")

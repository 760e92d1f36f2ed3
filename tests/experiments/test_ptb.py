import json

import pytest

from ._run import run_quick, run_script


def test_ptb_quick_writes_both_rows_and_resumes(tmp_path, data_dir):
    code, out, argv = run_quick("ptb", tmp_path, data_dir)
    assert code == 0
    table = json.loads((out / "table.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    assert table["quick"] is True and set(rows) == {"lm", "vae"}
    for r in rows.values():
        assert 0 < r["nll"] < 1000 and r["n_test"] == 40 and r["ppl"] > 1 and r["epochs"] == 1
        assert (out / r["curve"]).is_file() and r["tokens"] > r["n_test"]
    assert rows["lm"]["estimator"] == "exact" and rows["lm"]["kl"] == 0.0
    assert rows["lm"]["nll"] == pytest.approx(rows["lm"]["neg_elbo"], rel=1e-4)  # exact: no bound gap
    assert rows["vae"]["estimator"] == "IWAE" and rows["vae"]["k"] == 3 and rows["vae"]["kl"] > 0
    assert rows["vae"]["nll"] <= rows["vae"]["neg_elbo"] + 1.0  # IWAE tighter than the ELBO, up to noise
    assert rows["lm"]["published_ppl"] == 116 and rows["vae"]["published_ppl"] == 119
    md = (out / "table.md").read_text()
    assert "not a result" in md and "116" in md
    # a second invocation of one row keeps the other row
    assert run_script("ptb", argv + ["--models", "vae"]) == 0
    rows2 = {r["name"]: r for r in json.loads((out / "table.json").read_text())["rows"]}
    assert rows2["lm"] == rows["lm"] and rows2["vae"]["epochs"] == 1


def test_ptb_row_not_run_is_listed_without_a_number(tmp_path, data_dir):
    code, out, _ = run_quick("ptb", tmp_path, data_dir, "--models", "vae")
    assert code == 0
    line = next(r for r in (out / "table.md").read_text().splitlines() if r.startswith("| lm |"))
    assert "not run yet" in line and "| 116 |" in line and "| — |" in line


def test_ptb_bad_input(tmp_path, data_dir):
    with pytest.raises(SystemExit) as e:
        run_script("ptb", ["--models", "nope", "--out", str(tmp_path)])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # nothing to score yet
        run_script("ptb", ["--minutes", "0", "--data-dir", str(data_dir), "--out", str(tmp_path / "o"),
                           "--work", str(tmp_path / "w")])
    assert e.value.code == 2

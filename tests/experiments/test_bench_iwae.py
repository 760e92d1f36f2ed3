import json

from ._run import run_script


def test_bench_iwae_quick(tmp_path):
    out = tmp_path / "b.json"
    assert run_script("bench_iwae", ["--quick", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["k"] == 50 and row["n"] == 8 and row["images_per_s"] > 0 and row["peak_extra_mib"] >= 0
    assert row["mean_log_likelihood"] < 0

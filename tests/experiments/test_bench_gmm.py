import json

from ._run import run_script


def test_bench_gmm_quick(tmp_path):
    out = tmp_path / "b.json"
    assert run_script("bench_gmm", ["--quick", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert abs(row["loglik_gap"]) < 0.5  # same K, same init: same optimum as scikit-learn

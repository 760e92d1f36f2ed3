import json

from ._run import run_script


def test_bench_gmm_quick(tmp_path):
    out = tmp_path / "b.json"
    assert run_script("bench_gmm", ["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["n_init"] for r in rows] == [1, 2] and result["device"] in ("cpu", "cuda")
    for row in rows:  # the user's defaults, same k-means start as scikit-learn: the same optimum
        assert abs(row["loglik_gap"]) < 0.05 and row["time_ratio"] > 0
    assert all(a == b for a, b in rows[0]["iterations_sklearn_probgen"])

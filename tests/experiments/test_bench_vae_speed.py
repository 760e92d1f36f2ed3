import json

from ._run import run_script


def test_bench_vae_speed_quick(tmp_path):
    out = tmp_path / "b.json"
    assert run_script("bench_vae_speed", ["--quick", "--data", "digits", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["plain_ms"] > 0 and r["ratio"] > 0 for r in rows)

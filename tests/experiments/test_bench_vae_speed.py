import json

from ._run import run_script


def test_bench_vae_speed_quick(tmp_path):
    out = tmp_path / "b.json"
    assert run_script("bench_vae_speed", ["--quick", "--data", "digits", "--compile", "trace",
                                                "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["rows"] and all(r["plain_ms"] > 0 and r["ratio"] > 0 and r["pyro_svi_ms"] > 0 for r in res["rows"])
    assert res["epoch"]["plain_epoch_s"] > 0 and res["epoch"]["epoch_ratio"] > 0
    # the compiled side ran through the captured graph (inductor's warm-up is left to the full bench)
    assert all(r["probgen_compiled_ms"] > 0 and r["compiled_active"] for r in res["rows"])
    assert res["epoch"]["probgen_compiled_epoch_s"] > 0

import json

from ._run import run_script


def test_binarized_mnist_quick(tmp_path, data_dir):
    out = tmp_path / "bm"
    argv = ["--quick", "--data-dir", str(data_dir), "--out", str(out), "--quiet"]
    assert run_script("binarized_mnist", argv) == 0
    table = json.loads((out / "likelihood_table.json").read_text())
    assert [r["model"] for r in table["rows"]] == ["gmm", "vae"]
    assert all(r["nll"] > 0 for r in table["rows"])
    assert (out / "likelihood_table.md").read_text().count("137.64") >= 1
    # a second invocation resumes from the checkpoints
    assert run_script("binarized_mnist", argv) == 0

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from probgen.cli import main


def test_compare_writes_table_json_checkpoints_and_figures(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--epochs", "2", "--num-samples", "20", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "gmm" in text and "vae" in text and "IWAE" in text and "exact" in text
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["name"] == "digits" and res["data"]["quantity"] == "log mass"
    names = [m["name"] for m in res["models"]]
    assert names == ["gmm", "vae"]
    for m in res["models"]:
        assert set(m) >= {"name", "test_log_likelihood", "stderr", "estimator", "num_samples",
                          "fit_seconds", "n_params"}
        assert m["test_log_likelihood"] < 0
    for f in ("gmm.pt", "vae.pt", "samples_gmm.png", "samples_vae.png", "compare.png"):
        assert (out / f).is_file(), f
    # reload instead of training: same exact GMM number
    out2 = tmp_path / "again"
    assert main(["compare", "--from", str(out), "--num-samples", "20", "--out", str(out2), "--quiet"]) == 0
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["models"][0]["test_log_likelihood"] == pytest.approx(res["models"][0]["test_log_likelihood"])


def test_continuous_compare_uses_densities(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compare", "--continuous", "--epochs", "1", "--num-samples", "5", "--out", str(out),
                 "--quiet", "--no-diagnostics"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["quantity"] == "log density" and res["data"]["dequantized"]


def test_train_and_sample(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "vae", "--epochs", "1", "--z-dim", "2", "--hidden", "16",
                 "--quiet"]) == 0
    assert main(["train", "--out", str(tmp_path), "gmm", "--n-components", "3", "--quiet"]) == 0
    for name in ("vae", "gmm"):
        png, npy = tmp_path / f"{name}.png", tmp_path / f"{name}.npy"
        assert main(["sample", str(tmp_path / f"{name}.pt"), "-n", "6", "--out", str(png), "--npy", str(npy)]) == 0
        arr = np.load(npy)
        assert arr.shape == (6, 8, 8) and arr.min() >= 0 and arr.max() <= 1
        Image.open(png).verify()


@pytest.mark.parametrize("argv, needle", [
    (["compare", "--data", "nope"], "unknown data set"),
    (["compare", "--models", "gmm,nope"], "unknown nope"),
    (["compare", "--num-samples", "0"], "num-samples"),
    (["sample", "missing.pt"], "not found"),
    (["train", "vae", "--epochs", "-1", "--quiet"], "epochs"),
    (["train", "vae", "--z-dim", "0", "--quiet"], "z_dim"),
    (["train", "gmm", "--n-components", "5000", "--quiet"], "larger than the data"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "probgen", "sample", str(tmp_path / "x.pt")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "probgen", "compare", "--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [
    ["train", "vae", "--data", "digits", "--out", "{out}", "--epochs", "1"],
    ["train", "--out", "{out}", "vae", "--epochs", "1"],
    ["train", "--epochs", "1", "--data", "digits", "vae", "--out", "{out}"],
    ["train", "--out", "{out}", "--z-dim", "3", "--epochs", "1", "vae"],  # a model's own flag before its name
    ["--out", "{out}", "--seed", "0", "train", "--epochs", "1", "vae"],  # options before the command too
])
def test_options_anywhere(argv, tmp_path, capsys):
    """Shared flags go before or after the model name (issue 15)."""
    out = tmp_path / "run"
    assert main([a.format(out=out) for a in argv] + ["--hidden", "8", "--z-dim", "2", "--quiet"]) == 0
    assert (out / "vae.pt").is_file()
    assert "trained vae" in capsys.readouterr().out
    from probgen.models import load

    assert load(out / "vae.pt").z_dim == 2


def test_options_before_any_command(tmp_path, capsys):
    """`probgen --seed 0 --out DIR compare ...` is `probgen compare --seed 0 --out DIR ...`."""
    out = tmp_path / "cmp"
    assert main(["--seed", "0", "--out", str(out), "compare", "--models", "gmm", "--quiet", "--num-samples", "5",
                 "--no-diagnostics"]) == 0
    assert (out / "results.json").is_file()


def test_defaults_come_from_the_recipe_configs_and_names_move_first():
    """Every default is written once, in the recipes' config dataclasses; one helper moves the command
    and the model name to the front (an option's value is never taken for a name)."""
    import dataclasses

    from probgen.cli import build_parser, command_first
    from probgen.cli.spine import model_first
    from probgen.recipes.code_space import WhyVAEConfig
    from probgen.recipes.compare import CompareConfig
    from probgen.recipes.train import TrainConfig

    parser = build_parser()
    args = parser.parse_args(["compare"])
    assert args.out == CompareConfig().run.out
    argv = model_first(command_first(parser, ["--out", "train", "--epochs", "1", "train", "--lr", "0.1", "vae"]))
    assert argv == ["train", "vae", "--out", "train", "--epochs", "1", "--lr", "0.1"]
    sub = next(a for a in parser._actions if a.dest == "command").choices
    train_vae = next(a for a in sub["train"]._actions if a.dest == "model").choices["vae"]
    assert train_vae.get_default("out") != TrainConfig().run.out  # suppressed: the config's default fills it
    assert f"(default: {TrainConfig().run.out})" in train_vae.format_help()
    why = parser.parse_args(["why-vae"])
    fit = WhyVAEConfig().fit
    assert {f.name: getattr(why, f.name) for f in dataclasses.fields(fit)} == dataclasses.asdict(fit)

"""The "Write your own generative story" example runs exactly as shown, from Python and the CLI."""
from __future__ import annotations

import re
import runpy
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "README.md"  # the example shown in the README is the one that runs
SECTION = "Write your own generative story"


def example_code(source: Path = SOURCE, section: str = SECTION, index: int = 0) -> str:
    """The ``index``-th ```python block after the heading ``section``."""
    text = source.read_text()
    heading = re.search(rf"^#+ {re.escape(section)}\s*$", text, flags=re.M)
    assert heading, f"{source}: no section {section!r}"
    blocks = re.findall(r"^```python\n(.*?)^```", text[heading.end():], flags=re.M | re.S)
    assert len(blocks) > index, f"{source}: no python block {index} in section {section!r}"
    return blocks[index]


def test_example_is_short_plain_pyro():
    code = example_code()
    assert len(code.strip().splitlines()) < 40
    assert "probgen" not in code.split('"""', 2)[-1]  # the story itself never imports probgen


def test_example_runs_from_python_and_the_cli(tmp_path, monkeypatch, capsys):
    from probgen.cli import main

    (tmp_path / "student_t_vae.py").write_text(example_code())
    (tmp_path / "compare_them.py").write_text(example_code(index=1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    runpy.run_path(str(tmp_path / "compare_them.py"), run_name="__main__")  # what `python compare_them.py` runs
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "test log-likelihood" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["StudentTVAE", "VAE"]
    for ln in lines:
        assert -64 * 0.7 < float(re.search(r"likelihood (-?[\d.]+)", ln).group(1)) < 0
    # the same file through the CLI, unchanged
    assert main(["train", "--story", "student_t_vae.py:StudentTVAE", "--data", "digits", "--epochs", "1",
                 "--quiet", "--num-samples", "3", "--story-args", "df=5", "hidden=32"]) == 0
    assert (tmp_path / "runs" / "train" / "student_t_vae.StudentTVAE.pt").is_file()

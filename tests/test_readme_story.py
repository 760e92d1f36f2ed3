"""The "Write your own generative story" example runs exactly as shown, from Python and the CLI."""
from __future__ import annotations

import re
import runpy
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "README.md"  # the example shown in the README is the one that runs
SECTION = "Write your own generative story"


def example_code(source: Path = SOURCE, section: str = SECTION) -> str:
    """The first ```python block after the heading ``section``."""
    text = source.read_text()
    heading = re.search(rf"^#+ {re.escape(section)}\s*$", text, flags=re.M)
    assert heading, f"{source}: no section {section!r}"
    block = re.search(r"^```python\n(.*?)^```", text[heading.end():], flags=re.M | re.S)
    assert block, f"{source}: no python block in section {section!r}"
    return block.group(1)


def test_example_is_short():
    assert len(example_code().strip().splitlines()) < 40


def test_example_runs_from_python_and_the_cli(tmp_path, monkeypatch, capsys):
    from probgen.cli import main

    file = tmp_path / "student_t_vae.py"
    file.write_text(example_code())
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(file), run_name="__main__")  # exactly what `python student_t_vae.py` runs
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "test log-likelihood" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["StudentTVAE", "VAE"]
    for ln in lines:
        assert -64 * 0.7 < float(re.search(r"likelihood (-?[\d.]+)", ln).group(1)) < 0
    # the same file through the CLI (importing it skips the __main__ part)
    assert main(["train", "--story", "student_t_vae.py:StudentTVAE", "--data", "digits", "--epochs", "1",
                 "--quiet", "--num-samples", "3", "--story-args", "df=5", "hidden=32"]) == 0
    assert (tmp_path / "runs" / "train" / "studenttvae.pt").is_file()

"""Untrusted files run no code (issue 10).

A pickle can run any function while it is being loaded (``__reduce__``). These tests
build such files, prove that they really are armed (plain ``pickle.load`` runs the
payload), and check that every probgen entry point that reads a file refuses them
without running the payload: ``probgen.models.load``, ``Story.load``, ``--resume``,
``probgen sample`` (a real subprocess) and the data loaders. A checkpoint that points
at a user's story file (``--story file.py:Class``) is not imported either: running a
story file is only ever done explicitly.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import probgen.models
from probgen.data import load as load_data
from probgen.models import VAE
from probgen.infer.svi import fit_svi

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this object creates ``marker`` (any code could run there instead)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _armed_checkpoints(d: Path, marker: Path) -> dict[str, Path]:
    """Malicious files in every shape a checkpoint can take."""
    good = VAE(4, z_dim=2, hidden=(3,)).save(d / "good.pt")
    payload = torch.load(good, weights_only=True)
    files = {}
    # 1. a probgen-looking checkpoint with the payload hidden in the config
    evil = dict(payload, config=dict(payload["config"], hidden=Payload(marker)))
    torch.save(evil, d / "evil_config.pt")
    files["config"] = d / "evil_config.pt"
    # 2. hidden in the training state (what --resume reads)
    evil = dict(payload, extra={"epoch": Payload(marker)})
    torch.save(evil, d / "evil_extra.pt")
    files["extra"] = d / "evil_extra.pt"
    # 3. the whole file is the payload (torch zip format)
    torch.save(Payload(marker), d / "evil_whole.pt")
    files["whole"] = d / "evil_whole.pt"
    # 4. a bare pickle, no zip container (torch's legacy format)
    (d / "evil_legacy.pt").write_bytes(pickle.dumps({"probgen": {"format": 1}, "kind": Payload(marker)}))
    files["legacy"] = d / "evil_legacy.pt"
    return files


@pytest.fixture()
def armed(tmp_path):
    marker = tmp_path / "PWNED"
    return _armed_checkpoints(tmp_path, marker), marker


def test_the_files_are_really_armed(armed, tmp_path):
    """Without weights_only, loading runs the payload: the test files are dangerous."""
    files, marker = armed
    with zipfile.ZipFile(files["config"]) as z:  # the pickle inside torch's zip container
        name = next(n for n in z.namelist() if n.endswith("data.pkl"))
        raw = z.read(name)
    assert not marker.exists()
    try:
        pickle.loads(raw)  # unpickling needs torch's persistent_load for tensors; the payload runs first
    except pickle.UnpicklingError:
        pass
    assert marker.exists(), "the crafted pickle should run code when loaded unsafely"
    marker.unlink()
    pickle.loads(files["legacy"].read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("which", ["config", "extra", "whole", "legacy"])
def test_load_refuses_without_running(armed, which):
    files, marker = armed
    for loader in (probgen.models.load, VAE.load):
        with pytest.raises(ValueError) as info:
            loader(files[which])
        assert "refused" in str(info.value) or "not a readable" in str(info.value), str(info.value)
        assert not marker.exists(), f"{loader.__qualname__} ran code from {files[which].name}"


def test_resume_refuses_without_running(armed, tmp_path):
    files, marker = armed
    run = tmp_path / "run"
    run.mkdir()
    (run / "vae.last.pt").write_bytes(files["extra"].read_bytes())
    model = VAE(4, z_dim=2, hidden=(3,))
    with pytest.raises(ValueError, match="refused"):
        fit_svi(model, torch.zeros(8, 4), epochs=1, checkpoint=run / "vae.pt", resume=True, progress=False)
    assert not marker.exists()


def test_data_files_with_pickles_are_refused(tmp_path):
    marker = tmp_path / "PWNED"
    arr = np.array([Payload(marker)] * 4, dtype=object)
    np.save(tmp_path / "evil.npy", arr, allow_pickle=True)
    np.savez(tmp_path / "evil.npz", x=arr)
    for name in ("evil.npy", "evil.npz"):
        with pytest.raises(ValueError, match="cannot read"):
            load_data(tmp_path / name)
    assert not marker.exists()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "probgen", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_sample_refuses_and_story_files_are_not_imported(armed, tmp_path):
    """One real `probgen sample` process per file: exit 2, one line, nothing ran."""
    files, marker = armed
    # a checkpoint that names a user story file: loading it alone must not import the file
    story = tmp_path / "evil_story.py"
    story_marker = tmp_path / "STORY_RAN"
    story.write_text(f"from pathlib import Path\nPath({str(story_marker)!r}).touch()\n")
    good = torch.load(tmp_path / "good.pt", weights_only=True)
    good["kind"] = "evilstory"
    good["extra"] = {"story_source": {"path": str(story), "spec": f"{story}:Evil"}}
    torch.save(good, tmp_path / "story.pt")
    script = (
        "import sys\nfrom probgen.cli import main\ncodes = []\n"
        "for f in sys.argv[1:]:\n"
        "    codes.append(main(['sample', f, '--out', f + '.png']))\n"
        "print('CODES', codes)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    paths = [str(files[k]) for k in ("config", "whole", "legacy")] + [str(tmp_path / "story.pt")]
    proc = subprocess.run([sys.executable, "-c", script, *paths], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "CODES [2, 2, 2, 2]" in proc.stdout, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("probgen sample: error:")]
    assert len(errors) == 4 and "Traceback" not in proc.stderr, proc.stderr
    assert all("refused" in ln for ln in errors[:3]), errors
    assert "evilstory" in errors[3] or "user story" in errors[3], errors[3]
    assert not marker.exists() and not story_marker.exists()
    # and the console entry point itself, once
    proc = _cli("sample", str(files["config"]), "--out", str(tmp_path / "s.png"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "refused" in proc.stderr, proc.stderr
    assert not marker.exists() and not (tmp_path / "s.png").exists()

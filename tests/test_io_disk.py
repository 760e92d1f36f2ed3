"""A full disk or a read-only file system while a checkpoint is written (issue 30, item 1), for real.

torch does not raise ``OSError`` when the disk fills under ``torch.save``: it raises ``RuntimeError: [enforce
fail at inline_container.cc:...] unexpected pos ...`` while handling the ``OSError`` of the short write. The
one writer (``io.atomic_write``) must classify that, remove its partial file and leave the previous file
alone. A real small tmpfs is mounted where the machine allows it (root); a real kernel file-size limit
(``RLIMIT_FSIZE``) and ``/dev/full`` reproduce the same short write without root.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from probgen import io as pio
from probgen.cli import main
from probgen.models import VAE

ROOT = Path(__file__).resolve().parents[1]


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB tmpfs (skipped where mounting is not allowed: the file-size-limit test still runs)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("cannot mount a tmpfs here (needs root); test_short_write_under_a_file_size_limit covers "
                    "the same torch failure with a real kernel limit")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until ``leave`` bytes are free."""
    st = os.statvfs(disk)
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def _small_and_big():
    torch.manual_seed(0)
    return VAE(64, hidden=(8,)), VAE(64, hidden=(512,))  # ~10 KB and ~300 KB of weights


def test_full_disk_gives_enospc_and_keeps_the_previous_checkpoint(small_disk):
    small, big = _small_and_big()
    path = small.save(small_disk / "m.pt")
    before = path.read_bytes()
    _fill(small_disk, 32 * 1024)
    with pytest.raises(OSError) as info:
        big.save(path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert path.read_bytes() == before  # the previous good file, untouched
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "m.pt"]  # no partial file left


def test_read_only_file_system_gives_erofs_and_keeps_the_checkpoint(small_disk):
    small, big = _small_and_big()
    path = small.save(small_disk / "m.pt")
    before = path.read_bytes()
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True).returncode == 0
    with pytest.raises(OSError) as info:
        big.save(path)
    assert info.value.errno == errno.EROFS and str(small_disk) in info.value.filename
    assert path.read_bytes() == before


def test_train_on_a_full_disk_is_one_line_exit_2(small_disk):
    _fill(small_disk, 48 * 1024)  # room for the run's small files, not for the checkpoint
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--out", str(small_disk / "r"), "vae", "--data", "digits", "--epochs", "1", "--quiet"])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip() and not ln.startswith("device:")]
    assert code == 2, err.getvalue()
    assert len(lines) == 1 and "Traceback" not in err.getvalue(), err.getvalue()
    assert "vae.pt: no space left on the device" in lines[0]
    assert not [p for p in (small_disk / "r").iterdir() if p.name.endswith(".tmp")]


def test_torch_short_write_is_classified_by_its_cause(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    f = open("/dev/full", "wb")  # noqa: SIM115 - its close fails too (the buffer cannot be flushed)
    try:
        with pytest.raises(RuntimeError, match="unexpected pos|PytorchStreamWriter") as info:  # a real ENOSPC
            torch.save({"w": torch.zeros(4096)}, f)
    finally:
        with contextlib.suppress(OSError):
            f.close()
    err = pio._write_failure(info.value, tmp_path / "m.pt")
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC and err.filename == str(tmp_path / "m.pt")
    # torch's message without the OSError behind it (a C++ write): the disk's state decides (room here: EIO)
    bare = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1920 vs 1814")
    assert pio._write_failure(bare, tmp_path / "m.pt").errno == errno.EIO
    assert pio._write_failure(RuntimeError("a bug in a story"), tmp_path / "m.pt") is None  # not a disk failure


def test_short_write_under_a_file_size_limit(tmp_path):
    """The same torch failure from a real kernel limit (``RLIMIT_FSIZE``: EFBIG), no root needed: in a child
    process, since the limit holds for the whole process."""
    script = textwrap.dedent("""
        import errno, os, resource, signal, sys
        import torch
        from probgen.models import VAE
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the short write then fails with EFBIG, not a signal
        path = sys.argv[1]
        torch.manual_seed(0)
        VAE(64, hidden=(8,)).save(path)
        before = open(path, "rb").read()
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 8192, resource.RLIM_INFINITY))
        try:
            VAE(64, hidden=(512,)).save(path)
        except OSError as e:
            print(errno.errorcode[e.errno], e.filename == path, open(path, "rb").read() == before,
                  sorted(os.listdir(os.path.dirname(path))))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.pt")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.split() == ["EFBIG", "True", "True", "['m.pt']"], out.stdout + out.stderr

"""A data path that cannot be opened says why (issue 30, item 11): a symlink loop, a link whose target is gone,
a deleted file; a bare word is still an unknown data set. Labels of a user's file are bounded (item 8)."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from probgen.cli import main
from probgen.data import MAX_CLASSES, load, load_text
from probgen.data.safe import regular_file


def _cli(argv) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, [ln for ln in err.getvalue().splitlines() if ln.strip() and not ln.startswith("device:")]


@pytest.fixture
def loop(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def test_symlink_loop(loop, tmp_path):
    with pytest.raises(ValueError, match="a.npz: is a symlink loop"):
        load(str(loop))
    with pytest.raises(ValueError, match="is a symlink loop"):
        regular_file(loop)
    with pytest.raises(ValueError, match="is a symlink loop"):
        load_text(loop)
    selfloop = tmp_path / "self"  # no suffix, no folder: a loop is still a loop, not a misspelt name
    selfloop.symlink_to(selfloop)
    with pytest.raises(ValueError, match="is a symlink loop"):
        load(str(selfloop))


def test_deleted_file_and_dangling_link(tmp_path):
    gone = tmp_path / "gone.npz"
    gone.write_bytes(b"x")
    gone.unlink()
    with pytest.raises(FileNotFoundError, match="gone.npz .no such file"):
        load(str(gone))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "moved.npz")
    with pytest.raises(FileNotFoundError, match="is a symbolic link to .*moved.npz, which does not exist"):
        load(str(link))
    with pytest.raises(ValueError, match="unknown data set 'no-such-set'"):  # a bare word: a misspelt name
        load("no-such-set")


def test_cli_names_the_path_problem(loop, tmp_path):
    code, lines = _cli(["train", "--out", tmp_path / "r", "vae", "--data", loop, "--epochs", "1", "--quiet"])
    assert code == 2 and len(lines) == 1 and "is a symlink loop" in lines[0] and "unknown data set" not in lines[0]
    code, lines = _cli(["train", "--out", tmp_path / "r", "vae", "--data", tmp_path / "gone.npz", "--quiet"])
    assert code == 2 and len(lines) == 1 and "no such file" in lines[0], lines


def test_labels_of_a_users_file_are_bounded(tmp_path):
    x = (np.arange(30 * 64).reshape(30, 8, 8) % 2 * 255).astype(np.uint8)
    y = np.arange(30) % 3
    y[0] = 10**9  # the class count would be 10**9 + 1: a terabyte for the CVAE's first layer
    np.savez(tmp_path / "big.npz", x=x, y=y)
    with pytest.raises(ValueError, match=f"labels y must lie in 0..{MAX_CLASSES - 1}"):
        load(str(tmp_path / "big.npz"))
    code, lines = _cli(["train", "--out", tmp_path / "r", "cvae", "--data", tmp_path / "big.npz", "--quiet"])
    assert code == 2 and len(lines) == 1 and "labels y must lie in 0.." in lines[0], lines

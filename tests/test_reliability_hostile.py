"""Hostile input and failing environments (issue 19): nothing a user owns is replaced, no input hangs or
explodes, every failure is one line.

A parametrised matrix over the classes of the issue (output paths that are not plain files, outputs equal
to inputs, FIFOs and devices as inputs, arrays and PNGs of the wrong kind or size, checkpoints with NaN
weights or hostile configs, disk full / read-only / permission denied by fault injection, broken pipes,
concurrent and repeated runs on one folder, API edges), then Hypothesis property tests for every loader.
Every case is fast: nothing trains more than zero epochs on digits.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from probgen import io as pio
from probgen.cli import main
from probgen.data import load as load_data
from probgen.data import safe
from probgen.data.text import load_text, read_lines
from probgen.models import VAE
from probgen.models import load as load_model
from probgen.runs import lock_path, manifest_path, read_manifest, run_folder

USER_ERRORS = (ValueError, FileNotFoundError)


@pytest.fixture(autouse=True)
def no_hang():
    """A case that blocks (a FIFO opened for reading) fails after 20 s instead of hanging the suite."""
    def boom(*_):
        raise TimeoutError("blocked: the input was opened although it is not a regular file")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return VAE(64, z_dim=2, hidden=(8,), x_shape=(8, 8)).save(tmp_path_factory.mktemp("ck") / "vae.pt")


def run_cli(argv) -> tuple[int, list[str], str]:
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip() and "Warning" not in ln
             and not ln.startswith("  ")]
    return code, lines, out.getvalue()


def one_line(code, lines, *expected):
    assert code == 2, (code, lines)
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for e in expected:
        assert e in lines[0], lines[0]


# -- 1. outputs that are not plain files, outputs that are inputs ------------------------------------
def _make_target(kind: str, d: Path) -> Path:
    p = d / "target"
    if kind == "symlink-file":
        (d / "victim").write_text("keep me")
        p.symlink_to(d / "victim")
    elif kind == "symlink-dangling":
        p.symlink_to(d / "nowhere")
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "folder":
        p.mkdir()
    elif kind == "device":
        return Path(os.devnull)
    return p


def _fingerprint(p: Path):
    st = os.lstat(p)
    return (st.st_mode, st.st_ino, os.readlink(p) if p.is_symlink() else None)


OUT_KINDS = ["symlink-file", "symlink-dangling", "fifo", "folder", "device"]
WRITERS = ["atomic_write", "write_json", "save_checkpoint", "sample-out", "sample-npy"]


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("kind", OUT_KINDS)
def test_outputs_that_are_not_regular_files_are_refused(kind, writer, tmp_path, ckpt):
    target = _make_target(kind, tmp_path)
    before = _fingerprint(target)
    if writer == "atomic_write":
        with pytest.raises(ValueError, match="refusing"):
            pio.atomic_write(target, lambda f: f.write(b"x"))
    elif writer == "write_json":
        with pytest.raises(ValueError, match="refusing"):
            pio.write_json(target, {"a": 1})
    elif writer == "save_checkpoint":
        with pytest.raises(ValueError, match="refusing"):
            VAE(4, z_dim=1, hidden=(2,)).save(target)
    else:
        if writer == "sample-out" and kind != "folder":
            target = target if kind == "device" else target.rename(tmp_path / "t.png")
            before = _fingerprint(target)
        flag = ["--out", target] if writer == "sample-out" else ["--out", tmp_path / "s.png", "--npy", target]
        code, lines, _ = run_cli(["sample", ckpt, "-n", "2", *flag])
        if writer == "sample-out" and kind == "folder":  # --out a folder: the grid goes inside it
            assert code == 0 and (target / "samples.png").is_file(), lines
            return
        assert code == 2 and len(lines) == 1, lines
    assert _fingerprint(target) == before
    if kind == "symlink-file":
        assert (tmp_path / "victim").read_text() == "keep me"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("flag", ["--npy", "--out"])
@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink", "dotdot"])
def test_an_output_equal_to_an_input_is_refused(flag, alias, tmp_path, ckpt):
    src = tmp_path / "m.pt"
    src.write_bytes(ckpt.read_bytes())
    data = src.read_bytes()
    if alias == "same":
        target = src
    elif alias == "symlink":
        target = tmp_path / "alias.png"
        target.symlink_to(src)
    elif alias == "hardlink":
        target = tmp_path / "hard.png"
        os.link(src, target)
    else:
        (tmp_path / "sub").mkdir()
        target = tmp_path / "sub" / ".." / "m.pt"
    argv = ["sample", src, "-n", "2"] + ([flag, target] if flag == "--out" else
                                           ["--out", tmp_path / "s.png", flag, target])
    code, lines, _ = run_cli(argv)
    one_line(code, lines)
    assert src.read_bytes() == data


def test_check_outputs_api(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"1")
    with pytest.raises(ValueError, match="also an input"):
        pio.check_outputs([a], [a])
    pio.check_outputs([tmp_path / "new.bin", None], [a])  # a new file, nothing to refuse


# -- 2/3. inputs that block or explode ------------------------------------------------------------
def _fifo(d: Path, name: str) -> Path:
    p = d / name
    os.mkfifo(p)
    return p


FIFO_LOADERS = [
    ("npy", "x.npy", lambda p: load_data(p)),
    ("npz", "x.npz", lambda p: load_data(p)),
    ("unknown-suffix", "x.dat", lambda p: load_data(p)),
    ("png-in-folder", "imgs/a.png", lambda p: load_data(p.parent)),
    ("text", "c.txt", lambda p: load_text(p)),
    ("json", "c.json", lambda p: read_lines(p)),
    ("checkpoint", "m.pt", lambda p: load_model(p)),
    ("checkpoint-io", "m.pt", lambda p: pio.load_checkpoint(p)),
    ("safe-read-bytes", "b.bin", lambda p: safe.read_bytes(p)),
]


@pytest.mark.parametrize("case", FIFO_LOADERS, ids=[c[0] for c in FIFO_LOADERS])
def test_a_fifo_is_refused_before_it_is_opened(case, tmp_path):
    _, name, call = case
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    if name.startswith("imgs/"):
        from PIL import Image

        for i in range(3):
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "imgs" / f"ok{i}.png")
    p = _fifo(tmp_path, name)
    with pytest.raises(ValueError, match="FIFO"):
        call(p)


@pytest.mark.parametrize("cmd", [["train", "--out", "{o}", "vae", "--epochs", "0", "--data", "{f}"],
                                 ["sample", "{f}"], ["compare", "--data", "{f}", "--out", "{o}"]])
def test_cli_fifo_input_one_line(cmd, tmp_path):
    f = _fifo(tmp_path, "in.npy" if "sample" not in cmd else "in.pt")
    code, lines, _ = run_cli([a.format(o=tmp_path / "o", f=f) for a in cmd] + ["--quiet"] * (cmd[0] != "sample"))
    one_line(code, lines, "FIFO")


def test_character_device_as_data_is_refused():
    with pytest.raises(ValueError, match="device"):
        load_data("/dev/zero")
    with pytest.raises(ValueError, match="device"):
        pio.load_checkpoint("/dev/zero")


BAD_DTYPES = [
    ("complex64", np.zeros((5, 4), np.complex64), "complex"),
    ("complex128", np.zeros((5, 4), np.complex128), "complex"),
    ("timedelta", np.zeros((5, 4), "m8[s]"), "timedelta"),
    ("datetime", np.zeros((5, 4), "M8[D]"), "datetime"),
    ("structured", np.zeros((5, 4), [("a", "f4"), ("b", "i4")]), "structured"),
    ("unicode", np.array([["a"] * 4] * 5), "numeric"),
    ("bytes", np.array([[b"a"] * 4] * 5), "numeric"),
    ("object", np.array([[None] * 4] * 5, dtype=object), "pickle"),
]


@pytest.mark.parametrize("fmt", ["npy", "npz-x", "npz-y"])
@pytest.mark.parametrize("case", BAD_DTYPES, ids=[c[0] for c in BAD_DTYPES])
def test_arrays_of_the_wrong_kind_are_refused(case, fmt, tmp_path):
    _, arr, expected = case
    if fmt == "npy":
        p = tmp_path / "a.npy"
        np.save(p, arr, allow_pickle=True)
    else:
        p = tmp_path / "a.npz"
        good = np.zeros((5, 4), np.float32)
        _savez(p, {"x": arr} if fmt == "npz-x" else {"x": good, "y": arr})
    with pytest.raises(ValueError) as info:
        load_data(p)
    assert expected in str(info.value) or (fmt == "npz-y" and "labels" in str(info.value)), str(info.value)


def _savez(p: Path, arrays: dict) -> None:
    with zipfile.ZipFile(p, "w") as z:
        for k, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=True)
            z.writestr(f"{k}.npy", buf.getvalue())


def _npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


SIZE_CASES = [
    ("npy-huge-header", lambda d: _write(d / "h.npy", _npy_header((10**6, 10**6))), "bound"),
    ("npy-huge-uint8", lambda d: _write(d / "h.npy", _npy_header((10**5, 10**5), "|u1")), "bound"),
    ("npy-truncated-body", lambda d: _write(d / "t.npy", _npy_header((10, 4)) + b"\0" * 7), "truncated"),
    ("npy-negative-shape", lambda d: _write(d / "n.npy", _npy_header((-1, 4))), "cannot read"),
    ("npy-bad-magic", lambda d: _write(d / "m.npy", b"\x93NUMPX" + b"\0" * 50), "cannot read"),
    ("npz-huge-member-header", lambda d: _zip(d / "h.npz", {"x.npy": _npy_header((10**6, 10**6))}), "bound"),
    ("npz-truncated-member", lambda d: _zip(d / "t.npz", {"x.npy": _npy_header((10, 4)) + b"\0"}), "truncated"),
    ("npz-not-zip", lambda d: _write(d / "z.npz", b"PK\x03\x04garbage"), "cannot read"),
    ("npz-empty-zip", lambda d: _zip(d / "e.npz", {}), "named 'x'"),
    ("npz-member-not-npy", lambda d: _zip(d / "n.npz", {"x.npy": b"hello"}), "cannot read"),
]


def _write(p: Path, b: bytes) -> Path:
    p.write_bytes(b)
    return p


def _zip(p: Path, members: dict) -> Path:
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return p


@pytest.mark.parametrize("case", SIZE_CASES, ids=[c[0] for c in SIZE_CASES])
def test_array_headers_are_checked_before_bodies(case, tmp_path):
    _, make, expected = case
    p = make(tmp_path)
    with pytest.raises(ValueError) as info:
        load_data(p)
    assert expected in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_a_compressed_bomb_is_refused_before_it_expands(tmp_path, monkeypatch):
    """4 MB of zeros compress to a few kB; with a 1 MB budget the member is refused from its size."""
    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, x=np.zeros((1000, 1000), np.float32))
    assert p.stat().st_size < 100_000
    monkeypatch.setattr(safe, "memory_budget", lambda: 2**20)
    with pytest.raises(ValueError, match="bound"):
        load_data(p)


def test_members_that_are_not_used_are_never_decompressed(tmp_path, monkeypatch):
    """Only x and y are read: a huge junk member beside them costs nothing."""
    p = tmp_path / "junk.npz"
    np.savez_compressed(p, x=np.zeros((10, 4), np.float32), junk=np.zeros((1000, 1000), np.float32))
    monkeypatch.setattr(safe, "memory_budget", lambda: 2**20)
    assert len(load_data(p).train) == 8


# PNGs: what is read, what is refused
def _png(d: Path, name: str, arr, mode=None) -> Path:
    from PIL import Image

    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(p) if mode else Image.fromarray(arr).save(p)
    return p


def _png_folder(d: Path, odd=None) -> Path:
    folder = d / "imgs"
    for i in range(4):
        _png(folder, f"g{i}.png", np.full((4, 4), 10 * i, np.uint8))
    if odd is not None:
        odd(folder)
    return folder


def _pal(folder):
    from PIL import Image

    im = Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").convert("P")
    im.putpalette([255, 0, 0] * 256)
    im.save(folder / "pal.png")


PNG_CASES = [
    ("16-bit", lambda f: _png(f, "s.png", np.full((4, 4), 40000, np.uint16)), "16-bit"),
    ("rgb-colour", lambda f: _png(f, "c.png", np.random.default_rng(0).integers(0, 255, (4, 4, 3), np.uint8)),
     "colour"),
    ("rgba-transparent", lambda f: _png(f, "t.png", np.zeros((4, 4, 4), np.uint8)), "transparent"),
    ("grey-alpha-transparent", lambda f: _png(f, "la.png", np.zeros((4, 4, 2), np.uint8), "LA"),
     "transparent"),
    ("palette-colour", _pal, "colour"),
    ("not-a-png", lambda f: _write(f / "x.png", b"hello"), "cannot read image"),
    ("truncated-png", lambda f: _write(f / "x.png", (f / "g0.png").read_bytes()[:30]), "cannot read image"),
    ("other-size", lambda f: _png(f, "big.png", np.zeros((5, 5), np.uint8)), "different sizes"),
]


@pytest.mark.parametrize("case", PNG_CASES, ids=[c[0] for c in PNG_CASES])
def test_png_kinds_are_refused_with_the_reason(case, tmp_path):
    _, odd, expected = case
    with pytest.raises(ValueError) as info:
        load_data(_png_folder(tmp_path, odd))
    assert expected in str(info.value), str(info.value)


PNG_OK = [
    ("rgb-grey", lambda f: _png(f, "rgb.png", np.full((4, 4, 3), 7, np.uint8))),
    ("rgba-opaque-grey", lambda f: _png(f, "rgba.png", np.dstack([np.full((4, 4, 3), 9, np.uint8),
                                                                   np.full((4, 4), 255, np.uint8)]))),
    ("1-bit", lambda f: _png(f, "bw.png", np.eye(4, dtype=bool))),
]


@pytest.mark.parametrize("case", PNG_OK, ids=[c[0] for c in PNG_OK])
def test_grey_pngs_in_other_modes_are_read(case, tmp_path):
    _, odd = case
    assert load_data(_png_folder(tmp_path, odd)).shape == (4, 4)


def test_a_png_over_the_pixel_bound_is_refused(tmp_path):
    p = _png(tmp_path, "x.png", np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="bound"):
        safe.read_png_grey(p, max_pixels=100)


# -- 6. checkpoints: NaN weights, hostile configs ------------------------------------------------------
def _variant(ckpt: Path, d: Path, change) -> Path:
    payload = torch.load(ckpt, weights_only=True)
    change(payload)
    p = d / "v.pt"
    torch.save(payload, p)
    return p


def _first_weight(p):
    return next(k for k, v in p["state_dict"].items() if v.is_floating_point() and v.dim() == 2)


CKPT_CASES = [
    ("nan-weight", lambda p: p["state_dict"][_first_weight(p)].fill_(float("nan")), "NaN or infinite"),
    ("inf-weight", lambda p: p["state_dict"][_first_weight(p)].fill_(float("inf")), "NaN or infinite"),
    ("neg-inf-one", lambda p: p["state_dict"][_first_weight(p)].view(-1)[0].fill_(-float("inf")),
     "NaN or infinite"),
    ("huge-hidden", lambda p: p["config"].update(hidden=[60000, 60000]), "refusing to build"),
    ("many-layers", lambda p: p["config"].update(hidden=[4000] * 100), "refusing to build"),
    ("int-over-bound", lambda p: p["config"].update(z_dim=2**40), "exceeds the bound"),
    ("deep-config", lambda p: p["config"].update(deep=_nest(40)), "nested deeper"),
]


def _nest(n):
    x: list = []
    for _ in range(n):
        x = [x]
    return x


@pytest.mark.parametrize("via", ["models.load", "VAE.load", "cli-sample"])
@pytest.mark.parametrize("case", CKPT_CASES, ids=[c[0] for c in CKPT_CASES])
def test_hostile_checkpoints_refuse_to_load(case, via, ckpt, tmp_path):
    _, change, expected = case
    p = _variant(ckpt, tmp_path, change)
    if via == "cli-sample":
        code, lines, _ = run_cli(["sample", p, "-n", "2", "--out", tmp_path / "s.png"])
        one_line(code, lines, expected)
        assert not (tmp_path / "s.png").exists()
        return
    with pytest.raises(ValueError) as info:
        (load_model if via == "models.load" else VAE.load)(p)
    assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_nan_buffer_is_not_a_nan_weight(ckpt):
    """Buffers may use NaN for "not set yet" (the GAN's Parzen bandwidth): only parameters are checked."""
    m = load_model(ckpt)
    m.register_buffer("unset", torch.tensor(float("nan")))
    pio.check_finite(m)


# -- API edges ---------------------------------------------------------------------------------------
API_EDGES = [
    ("device-tpu", lambda c: load_model(c, device="tpu"), "not a device"),
    ("device-nonsense", lambda c: load_model(c, device="gpu0"), "not a device"),
    ("device-cuda", lambda c: load_model(c, device="cuda") if not torch.cuda.is_available()
     else pytest.skip("CUDA present"), "CUDA is not available"),
    ("folder-as-checkpoint", lambda c: load_model(c.parent), "is a folder"),
    ("missing-checkpoint", lambda c: load_model(c.parent / "nope.pt"), "not found"),
    ("sample-n-over-bound", lambda c: __import__("probgen.recipes.train", fromlist=["x"]).load_for_sampling(
        c, n=10**9, seed=0, device="cpu"), "<= 10000"),
    ("deep-json", lambda c: read_lines(_deep_json(c.parent)), "nested too deeply"),
]


def _deep_json(d: Path) -> Path:
    p = d / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    return p


@pytest.mark.parametrize("case", API_EDGES, ids=[c[0] for c in API_EDGES])
def test_api_edges_raise_one_line(case, ckpt):
    _, call, expected = case
    with pytest.raises(USER_ERRORS) as info:
        call(ckpt)
    assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("cast", [np.int64, np.int32, np.int16, np.uint8])
def test_numpy_integers_are_accepted_and_saved_plain(cast, tmp_path):
    m = VAE(cast(64), z_dim=cast(2), hidden=(cast(8),))
    assert m.sample(cast(3)).shape == (3, 64)
    p = m.save(tmp_path / "np.pt")
    cfg = torch.load(p, weights_only=True)["config"]
    assert type(cfg["z_dim"]) is int and load_model(p).z_dim == 2


# -- 4. a failing environment: fault injection ------------------------------------------------------
FAULTS = [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
          (errno.EDQUOT, "quota"), (errno.EIO, "input/output"), (errno.EPERM, "not permitted")]
STAGES = ["mkstemp", "fsync", "replace"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("fault", FAULTS, ids=[errno.errorcode[f[0]] for f in FAULTS])
def test_disk_faults_give_one_line_and_leave_no_partial_file(fault, stage, tmp_path, ckpt, monkeypatch):
    code_, words = fault

    def fail(*a, **k):
        raise OSError(code_, os.strerror(code_))

    target = {"mkstemp": (pio.tempfile, "mkstemp"), "fsync": (pio.os, "fsync"),
              "replace": (pio.os, "replace")}[stage]
    monkeypatch.setattr(*target, fail)
    out = tmp_path / "o" / "s.png"
    code, lines, _ = run_cli(["sample", ckpt, "-n", "2", "--out", out])
    one_line(code, lines, words)
    assert str(tmp_path / "o") in lines[0]  # names the path
    assert not out.exists() and not list((tmp_path / "o").glob(".*")) if (tmp_path / "o").exists() else True


def test_atomic_write_names_the_file_when_the_system_did_not(tmp_path, monkeypatch):
    def full(*a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pio.os, "fsync", full)
    with pytest.raises(OSError) as info:
        pio.atomic_write(tmp_path / "f.bin", lambda f: f.write(b"x"))
    assert info.value.filename == str(tmp_path / "f.bin")
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_for_real(tmp_path, ckpt):
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop writes (fault injection covers EACCES)")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, lines, _ = run_cli(["sample", ckpt, "-n", "2", "--out", ro / "s.png"])
    one_line(code, lines, "permission denied")


class _BrokenStdout(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_broken_pipe_on_stdout_exits_quietly(ckpt, tmp_path, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", _BrokenStdout())
    monkeypatch.setattr("probgen.cli._silence_stdout", lambda: None)
    with contextlib.redirect_stderr(err):
        code = main(["sample", str(ckpt), "-n", "2", "--out", str(tmp_path / "s.png")])
    assert code == 141 and err.getvalue() == ""


def test_broken_pipe_for_real():
    """`probgen --help`-sized output into a reader that leaves at once: no traceback."""
    proc = subprocess.run(f"{sys.executable} -m probgen sample /nonexistent.pt 2>&1 | head -c 0",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr


def test_closed_stderr_does_not_raise(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["sample", "/nonexistent/m.pt"]) == 2


# -- 5. concurrent and repeated runs on one folder ------------------------------------------------
def test_a_live_lock_refuses_a_second_run(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tmp_path.mkdir(exist_ok=True)
        import socket

        lock_path(tmp_path, "vae").write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(ValueError, match="another probgen run"):
            with run_folder(tmp_path, name="vae"):
                pass
        assert lock_path(tmp_path, "vae").exists()  # not ours: left alone
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    lock_path(tmp_path, "vae").write_text(f"{dead.pid} {socket.gethostname()}\n")
    with run_folder(tmp_path, name="vae") as out:
        (out / "vae.pt").write_bytes(b"x")
    assert not lock_path(tmp_path, "vae").exists()
    assert read_manifest(tmp_path, "vae")["files"] == {"vae.pt": 1}


def test_two_concurrent_runs_one_refuses(tmp_path):
    barrier, results = threading.Barrier(2), []
    inside = threading.Event()

    def run():
        barrier.wait()
        try:
            with run_folder(tmp_path, name="m"):
                inside.set()
                threading.Event().wait(0.5)
            results.append("ok")
        except ValueError as e:
            results.append(str(e))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r == "ok" for r in results) == [False, True], results
    assert any("another probgen run" in r for r in results)


@pytest.mark.parametrize("flags,ok", [([], False), (["resume"], True), (["force"], True)])
def test_a_finished_run_needs_resume_or_force(tmp_path, flags, ok):
    with run_folder(tmp_path, name="vae", command="train vae"):
        (tmp_path / "vae.pt").write_bytes(b"1")
    assert manifest_path(tmp_path, "vae").is_file()
    kw = {f: True for f in flags}
    if ok:
        with run_folder(tmp_path, name="vae", **kw):
            assert not manifest_path(tmp_path, "vae").exists()  # unfinished while it runs
        assert manifest_path(tmp_path, "vae").exists()
    else:
        with pytest.raises(ValueError, match="--resume .* --force"):
            with run_folder(tmp_path, name="vae"):
                pass
    with run_folder(tmp_path, name="gmm"):  # another model's run may share the folder
        pass


def test_a_failed_run_writes_no_manifest_and_frees_the_lock(tmp_path):
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path, name="vae"):
            raise RuntimeError("killed half-way")
    assert not manifest_path(tmp_path, "vae").exists() and not lock_path(tmp_path, "vae").exists()


@pytest.mark.parametrize("setup,expected", [("user-file", "not empty"), ("empty", None), ("own-run", None)])
def test_fresh_folders_refuse_a_users_files(tmp_path, setup, expected):
    if setup == "user-file":
        (tmp_path / "thesis.tex").write_text("mine")
    elif setup == "own-run":
        with run_folder(tmp_path, name="tour", fresh=True):
            pass
    if expected:
        with pytest.raises(ValueError, match=expected):
            with run_folder(tmp_path, name="tour", fresh=True):
                pass
        assert (tmp_path / "thesis.tex").read_text() == "mine"
    else:
        with run_folder(tmp_path, name="tour", fresh=True, force=setup == "own-run"):
            pass


def test_cli_train_twice_refuses_then_resume_and_force_work(tmp_path):
    base = ["train", "--out", tmp_path, "vae", "--epochs", "0", "--z-dim", "2", "--hidden", "8", "--quiet"]
    code, lines, _ = run_cli(base)
    assert code == 0, lines
    assert json.loads(manifest_path(tmp_path, "vae").read_text())["files"]["vae.pt"] > 0
    before = (tmp_path / "vae.pt").read_bytes()
    code, lines, _ = run_cli(base)
    one_line(code, lines, "finished vae run", "--force")
    assert (tmp_path / "vae.pt").read_bytes() == before
    assert run_cli(base + ["--force"])[0] == 0
    lock_path(tmp_path, "vae").write_text(f"{os.getpid()} {__import__('socket').gethostname()}\n")
    code, lines, _ = run_cli(base + ["--force"])
    one_line(code, lines, "another probgen run")
    lock_path(tmp_path, "vae").unlink()


# -- property tests: every loader gives a result or one user error, never hangs or explodes ---------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

PROP = settings(max_examples=25, deadline=timedelta(seconds=10), derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
ANY_DTYPE = st.one_of(hnp.scalar_dtypes(), st.just(np.dtype(object)), st.just(np.dtype("U3")))


def _ok_or_user_error(call):
    try:
        return call()
    except USER_ERRORS as e:
        assert str(e).strip() and "\n" not in str(e).strip(), repr(e)
        return None


@PROP
@given(dtype=ANY_DTYPE, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
       cut=st.one_of(st.none(), st.integers(0, 200)))
def test_property_npy(tmp_path, dtype, shape, cut):
    p = tmp_path / "p.npy"
    buf = io.BytesIO()
    arr = np.zeros(shape, dtype) if dtype != object else np.full(shape, None, object)
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    raw = buf.getvalue()
    p.write_bytes(raw if cut is None else raw[:cut])
    _ok_or_user_error(lambda: load_data(p))
    _ok_or_user_error(lambda: safe.read_npy(p))


@PROP
@given(members=st.dictionaries(st.sampled_from(["x", "y", "z"]), st.tuples(ANY_DTYPE, st.integers(0, 6),
                                                                           st.booleans()), max_size=3),
       garbage=st.binary(max_size=64))
def test_property_npz(tmp_path, members, garbage):
    p = tmp_path / "p.npz"
    arrays = {}
    for k, (dtype, n, corrupt) in members.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.zeros((n, 3), dtype) if dtype != object else
                                  np.full((n, 3), None, object), allow_pickle=True)
        arrays[f"{k}.npy"] = buf.getvalue()[: len(buf.getvalue()) // 2] if corrupt else buf.getvalue()
    _zip(p, arrays)
    if garbage:
        p.write_bytes(p.read_bytes()[:len(garbage)] + garbage)
    _ok_or_user_error(lambda: load_data(p))


@PROP
@given(images=st.lists(st.tuples(st.sampled_from(["L", "RGB", "RGBA", "I;16", "1", "LA", "P"]),
                                 st.integers(1, 5), st.integers(1, 5), st.integers(0, 255)),
                       min_size=0, max_size=5),
       junk=st.booleans())
def test_property_png_folder(tmp_path_factory, images, junk):
    from PIL import Image

    d = tmp_path_factory.mktemp("png")
    for i, (mode, h, w, v) in enumerate(images):
        Image.new(mode, (w, h), v if mode not in ("RGB", "RGBA") else (v,) * len(mode)).save(d / f"{i}.png")
    if junk:
        (d / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    _ok_or_user_error(lambda: load_data(d))


@PROP
@given(text=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                      st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=5)),
                                   lambda c: st.lists(c, max_size=3) | st.dictionaries(
                                       st.sampled_from(["paragraphs", "title", "a"]), c, max_size=3),
                                   max_leaves=20).map(lambda o: json.dumps(o).encode())),
       suffix=st.sampled_from([".txt", ".json"]))
def test_property_text(tmp_path_factory, text, suffix):
    p = tmp_path_factory.mktemp("txt") / f"c{suffix}"
    p.write_bytes(text)
    _ok_or_user_error(lambda: load_text(p))


@PROP
@given(mutation=st.sampled_from(["none", "cut", "flip", "config-int", "config-list", "nan", "kind", "header"]),
       where=st.integers(0, 10**6), value=st.one_of(st.integers(-2**62, 2**62), st.floats(), st.text(max_size=4)))
def test_property_checkpoint(ckpt, tmp_path_factory, mutation, where, value):
    p = tmp_path_factory.mktemp("ck") / "m.pt"
    raw = ckpt.read_bytes()
    if mutation in ("cut", "flip"):
        i = where % len(raw)
        p.write_bytes(raw[:i] if mutation == "cut" else raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    else:
        payload = torch.load(ckpt, weights_only=True)
        if mutation == "config-int":
            payload["config"]["z_dim"] = value
        elif mutation == "config-list":
            payload["config"]["hidden"] = [value] * (where % 5)
        elif mutation == "nan":
            k = _first_weight(payload)
            payload["state_dict"][k].view(-1)[where % payload["state_dict"][k].numel()] = float("nan")
        elif mutation == "kind":
            payload["kind"] = value
        elif mutation == "header":
            payload["probgen"] = value
        torch.save(payload, p)
    model = _ok_or_user_error(lambda: load_model(p))
    if model is not None:
        assert all(torch.isfinite(q).all() for q in model.parameters())


def test_download_without_network_is_one_line(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    import urllib.error

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    code, lines, _ = run_cli(["train", "--out", tmp_path / "o", "vae", "--data", "mnist", "--data-dir",
                              tmp_path / "d", "--download", "--epochs", "0", "--quiet"])
    one_line(code, lines, "could not download MNIST", "expected layout")


@pytest.mark.parametrize("n", ["10001", "1000000000"])
def test_sample_n_over_the_bound(n, ckpt, tmp_path):
    code, lines, _ = run_cli(["sample", ckpt, "-n", n, "--out", tmp_path / "s.png"])
    one_line(code, lines, "<= 10000")

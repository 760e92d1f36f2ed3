"""probgen.recipes.usercode (issue 30): what a user's story raises while it trains, or how it tries to end the
process, is one line naming its file and line (exit 2); nothing is left looking finished."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from probgen.recipes.story import parse_story_args
from probgen.runs import lock_path, manifest_path
from tests.test_reliability_hostile import one_line, run_cli

STORY = textwrap.dedent('''
    import os
    import sys

    import pyro
    import pyro.distributions as dist

    from probgen import Story
    from probgen.nn import BernoulliDecoder, GaussianEncoder

    CALLS = [0]


    class Tiny(Story):
        def __init__(self, x_dim: int):
            super().__init__()
            self.encoder = GaussianEncoder(x_dim, 2, (8,))
            self.decoder = BernoulliDecoder(2, x_dim, (8,))

        def model(self, x, y=None):
            self.register_params()
            CALLS[0] += 1
            if CALLS[0] > 3:  # the story check runs it once; training fails a few steps in
                FAIL()
            with pyro.plate("data", len(x)):
                z = pyro.sample("z", dist.Normal(x.new_zeros(len(x), 2), 1.0).to_event(1))
                pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x.reshape(len(x), -1))

        def guide(self, x, y=None):
            self.register_params()
            with pyro.plate("data", len(x)):
                pyro.sample("z", dist.Normal(*self.encoder(x.reshape(len(x), -1))).to_event(1))
''')
FAILS = {
    "raise": ("raise KeyError('no such key')", "your story raised KeyError: 'no such key' while training"),
    "base-exception": ("raise type('Odd', (BaseException,), {})('odd')", "your story raised Odd: odd while training"),
    "sys-exit": ("sys.exit(3)", "your story called sys.exit(3) while training"),
    "os-exit": ("os._exit(0)", "your story called os._exit(0) while training"),  # in a child: see below
}


def _story(tmp_path: Path, fail: str) -> Path:
    path = tmp_path / f"story_{fail.replace('-', '_')}.py"
    path.write_text(STORY.replace("FAIL()", FAILS[fail][0]))
    return path


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _train(story: Path, out: Path) -> list:
    return ["train", "--story", f"{story}:Tiny", "--epochs", "2", "--batch-size", "64", "--num-samples", "0",
            "--quiet", "--out", out]


@pytest.mark.parametrize("fail", [f for f in FAILS if f != "os-exit"])
def test_a_story_failing_while_it_trains_is_one_line_naming_its_file_and_line(tmp_path, fail):
    story, out = _story(tmp_path, fail), tmp_path / "out"
    code, lines, _ = run_cli(_train(story, out))
    one_line(code, lines, FAILS[fail][1], f"(at {story}:{_line_of(story, FAILS[fail][0])})", "PROBGEN_DEBUG=1")
    stem = f"{story.stem}.Tiny"
    assert not manifest_path(out, stem).exists() and not lock_path(out, stem).exists()


def _python(*args, **env) -> subprocess.CompletedProcess:
    """``python ARGS`` in a child process that imports this checkout's probgen."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env}
    return subprocess.run([sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)


def test_os_exit_in_a_story_is_one_line_not_a_silent_exit_0(tmp_path):
    """In a child process: were ``os._exit(0)`` to end the process, it would end pytest with exit 0."""
    story, out = _story(tmp_path, "os-exit"), tmp_path / "out"
    (tmp_path / "leave.py").write_text("import os\n\nos._exit(0)\n")
    script = ("import sys\nfrom probgen.cli import main\n"
              f"codes = [main({[str(a) for a in _train(story, out)]!r}),"
              f" main(['train', '--story', {str(tmp_path / 'leave.py')!r}, '--out', {str(tmp_path / 'o')!r}])]\n"
              "print('codes', codes)\n")
    run = _python("-c", script)
    assert "codes [2, 2]" in run.stdout, (run.returncode, run.stdout, run.stderr)
    errors = [ln for ln in run.stderr.splitlines() if "error:" in ln]
    assert f"{FAILS['os-exit'][1]} (at {story}:{_line_of(story, 'os._exit')})" in errors[0]
    assert "leave.py: called os._exit(0) on import" in errors[1]
    assert not manifest_path(out, f"{story.stem}.Tiny").exists()


def test_probgen_debug_prints_the_users_traceback_above_the_line(tmp_path):
    story = _story(tmp_path, "raise")
    run = _python("-m", "probgen", *_train(story, tmp_path / "o"), PROBGEN_DEBUG="1")
    assert run.returncode == 2, run.stderr
    assert "Traceback" in run.stderr and f'File "{story}", line {_line_of(story, "raise KeyError")}' in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("probgen train: error: ")


def test_a_base_exception_at_import_is_one_line(tmp_path):
    (tmp_path / "odd.py").write_text("class Odd(BaseException):\n    pass\n\nraise Odd('at import')\n")
    code, lines, _ = run_cli(["train", "--story", f"{tmp_path / 'odd.py'}:X", "--out", tmp_path / "o", "--quiet"])
    one_line(code, lines, "importing it failed: Odd: at import", f"(at {tmp_path / 'odd.py'}:4)")


def test_a_failure_outside_the_story_is_not_blamed_on_it(tmp_path):
    story = _story(tmp_path, "raise")  # loading the data fails first, in probgen: its own line, no "your story"
    code, lines, _ = run_cli(["train", "--story", f"{story}:Tiny", "--data", "no-such-set", "--out", tmp_path / "o"])
    one_line(code, lines, "no-such-set")
    assert "your story" not in lines[0]


@pytest.mark.parametrize("text", ['{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  "a=" + "[" * 100_000 + "]" * 100_000, "a=" + "[" * 40 + "]" * 40])
def test_story_args_nested_too_deep_are_one_line(text):
    with pytest.raises(ValueError, match="--story-args: nested more than 32 levels deep"):
        parse_story_args([text])
    assert parse_story_args(["a=" + "[" * 32 + "]" * 32])  # the bound itself is fine

"""Divergence is caught; gradient clipping works (issue 10).

- A NaN loss stops training with a message naming the epoch and the step; the model
  goes back to its best state and the checkpoints of the last good epoch stay on disk,
  byte for byte.
- NaN parameters behind a finite loss are caught at the end of the epoch.
- The CLI turns a divergence into one line and exit code 1, and ``--resume`` from the
  kept checkpoint works afterwards.
- ``clip_norm`` bounds the global gradient norm (all parameters together) that Adam sees.
"""
from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pyro
import pytest
import torch

from probgen.cli import main
from probgen.models import VAE
from probgen.infer import DivergenceError, fit_svi


class PoisonedVAE(VAE):
    """A VAE whose training loss turns NaN at a chosen SVI step (or whose parameters do)."""

    kind = "test_poisoned_vae"

    def __init__(self, x_dim: int, *, poison_step: int = 7, poison: str = "loss", **kwargs):
        super().__init__(x_dim, **kwargs)
        self.poison_step, self.poison, self.calls = poison_step, poison, 0

    def model(self, x=None, y=None, n=None):
        super().model(x, y, n)
        if not self.training:  # validation is not poisoned
            return
        self.calls += 1
        if self.calls == self.poison_step and self.poison == "loss":
            pyro.factor("poison", torch.tensor(float("nan")))
        if self.calls == self.poison_step and self.poison == "params":
            # the loss of this step is still finite; the parameters are not after it
            for p in self.decoder.parameters():
                p.register_hook(lambda g: torch.full_like(g, float("nan")))


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 6, generator=g) > 0.5).float()


def test_nan_loss_names_epoch_and_step_and_keeps_checkpoint(tmp_path):
    x = _data()
    model = PoisonedVAE(6, z_dim=2, hidden=(4,), poison_step=7)  # 4 steps per epoch: epoch 2, step 3
    ckpt = tmp_path / "m.pt"
    with pytest.raises(DivergenceError) as info:
        fit_svi(model, x, val=x[:8], epochs=5, batch_size=10, checkpoint=ckpt, progress=False, patience=None)
    msg = str(info.value)
    assert "epoch 2, step 3" in msg and "nan" in msg.lower(), msg
    # what is on disk is the state after epoch 1, and the model holds the best state
    saved = torch.load(ckpt, weights_only=True)
    last = torch.load(tmp_path / "m.last.pt", weights_only=True)
    assert saved["extra"]["epoch"] == 1 and last["trainer"]["epoch"] == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved["state_dict"][k]) and torch.isfinite(v).all()


def test_nan_parameters_behind_finite_loss_are_caught(tmp_path):
    x = _data()
    model = PoisonedVAE(6, z_dim=2, hidden=(4,), poison_step=4, poison="params")  # last step of epoch 1
    with pytest.raises(DivergenceError, match="epoch 1"):
        fit_svi(model, x, epochs=3, batch_size=10, checkpoint=tmp_path / "m.pt", progress=False,
                patience=None)
    assert not (tmp_path / "m.pt").exists(), "no checkpoint of NaN parameters may be written"
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, [ln for ln in err.getvalue().splitlines() if ln.strip() and "Warning" not in ln
                  and not ln.startswith("  ")]


def test_cli_divergence_one_line_checkpoint_kept_then_resume(tmp_path):
    out = tmp_path / "run"
    base = ["train", "--out", str(out), "vae", "--hidden", "8", "--z-dim", "2", "--batch-size", "256",
            "--patience", "100", "--quiet"]
    assert _cli(base + ["--epochs", "1"])[0] == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.pt")}
    code, lines = _cli(base + ["--epochs", "3", "--resume", "--lr", "1e30"])  # explodes in epoch 2
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("probgen train: error: ") and "epoch 2, step" in lines[0], lines
    assert {p.name: p.read_bytes() for p in out.glob("*.pt")} == before, "checkpoints must stay as they were"
    assert _cli(base + ["--epochs", "2", "--resume"])[0] == 0  # and the run goes on from them
    assert torch.load(out / "vae.last.pt", weights_only=True)["trainer"]["epoch"] == 1


def test_clip_norm_bounds_the_global_gradient_norm(monkeypatch):
    """Spy on every Adam step: the gradients of one SVI step have global norm <= clip_norm."""
    seen: list[float] = []
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    seen.append(float(p.grad.pow(2).sum()))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    x = _data(64)

    def norms(clip):
        seen.clear()
        pyro.clear_param_store()
        model = VAE(6, z_dim=2, hidden=(4,))
        n_params = len(list(model.parameters()))
        fit_svi(model, x, epochs=2, batch_size=16, clip_norm=clip, progress=False, patience=None)
        steps = [seen[i:i + n_params] for i in range(0, len(seen), n_params)]
        return [math.sqrt(sum(s)) for s in steps]

    free = norms(None)
    clipped = norms(0.5)
    assert len(free) == len(clipped) == 8
    assert max(free) > 0.5, "the test needs gradients larger than the clip"
    assert max(clipped) <= 0.5 * (1 + 1e-5), clipped


# -- the fast step: Pyro's ELBO as a module, one torch optimizer, modules registered once (issue 20) --
@pytest.mark.parametrize("elbo", ["trace", "meanfield"])
def test_step_loss_and_gradients_equal_trace_elbo(elbo):
    """SVIStep's loss and gradients equal Pyro's ``loss_and_grads`` on the same noise, also on
    later steps, where ``register_params`` is skipped."""
    from probgen.infer.svi import SVIStep, make_elbo

    x = _data(32)
    model = VAE(6, z_dim=2, hidden=(4,))
    step = SVIStep(model, make_elbo(elbo), lr=1e-2)
    reference = make_elbo(elbo)
    for i in range(3):
        pyro.set_rng_seed(i)
        loss = float(step.backward(x).detach())
        ours = [p.grad.clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        pyro.set_rng_seed(i)
        ref = reference.loss_and_grads(model.model, model.guide, x)
        assert loss == pytest.approx(ref, rel=1e-5)
        for a, p in zip(ours, model.parameters()):
            torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-5)
            p.grad = None
        step.backward(x)
        step.optim.step()  # move on: the next comparison is at new parameter values
    assert len(step.optim.param_groups) == 1, "module parameters are adopted once, not twice"


def test_step_adopts_a_lazily_made_pyro_param():
    """A story with a ``pyro.param`` of its own (no nn.Parameter) still trains."""
    import pyro.distributions as dist

    from probgen.story import Story

    class Bias(Story):
        kind = "test_bias_story"

        def model(self, x=None, y=None):
            self.register_params()
            logits = pyro.param("test_bias_logits", lambda: torch.zeros(6))
            with pyro.plate("data", len(x)):
                pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    x = torch.ones(40, 6)
    res = fit_svi(Bias(), x, epochs=5, batch_size=10, lr=0.1, progress=False, patience=None)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert (pyro.param("test_bias_logits") > 0.3).all()

"""The compiled SVI step (probgen.infer.compiled): same loss and gradients as Trace_ELBO, a
dynamic story falls back with one notice, resume stays bit-identical, ``--compile`` runs."""
import random
import time

import pyro
import pyro.distributions as dist
import pytest
import torch

from probgen.infer import compiled
from probgen.infer.compiled import CompiledStep, check_compile
from probgen.infer.svi import SVIStep, fit_svi, make_elbo
from probgen.models import VAE
from probgen.story import Story


def _x(n=48, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g) > 0.5).float()


def _eager_loss_and_grads(vae, x, seed):
    """Pyro's own Trace_ELBO, seeded: the reference."""
    torch.manual_seed(seed)
    for p in vae.parameters():
        p.grad = None
    loss = pyro.infer.Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in vae.parameters()]


@pytest.mark.parametrize("elbo", ["trace", "meanfield"])
def test_traced_graph_equals_trace_elbo(elbo):
    x = _x()
    vae = VAE(12, z_dim=3, hidden=(8,))
    step = CompiledStep(SVIStep(vae, make_elbo(elbo), lr=1e-3), backend="trace", elbo=elbo)
    step(x)  # eager first step: registers the modules
    step._build(step._key_of((x,)), (x,))
    assert step.active and step._graph is not None
    torch.manual_seed(5)
    loss, grads = step._graph([p.detach() for p in step.params], x)
    ref_loss, ref_grads = _eager_loss_and_grads(vae, x, 5)
    if elbo == "meanfield":  # analytic KL: compare with Pyro's TraceMeanField_ELBO instead
        torch.manual_seed(5)
        for p in vae.parameters():
            p.grad = None
        ref_loss = pyro.infer.TraceMeanField_ELBO().differentiable_loss(vae.model, vae.guide, x)
        ref_loss.backward()
        ref_loss, ref_grads = ref_loss.detach(), [p.grad.clone() for p in vae.parameters()]
    assert torch.allclose(loss, ref_loss, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-5, atol=1e-5)
    # the draws are the graph's own RNG operations: another seed, another loss
    torch.manual_seed(6)
    assert not torch.equal(step._graph([p.detach() for p in step.params], x)[0], loss)


def test_fit_compiled_equals_eager():
    x = _x(100)
    runs = {}
    for mode in (False, "trace"):
        pyro.set_rng_seed(0)
        vae = VAE(12, z_dim=3, hidden=(8,))
        vae.fit(x, epochs=2, batch_size=32, progress=False, compile=mode, elbo="trace")
        runs[mode] = vae
    for a, b in zip(runs[False].state_dict().values(), runs["trace"].state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    # 4 batches per epoch (the last has 4 rows: eager), the first 3 steps eager or checked
    assert runs["trace"].train_result.steps == 8


def test_compiled_steps_counted_and_graph_reused():
    x = _x(96)
    vae = VAE(12, z_dim=3, hidden=(8,))
    step = CompiledStep(SVIStep(vae, make_elbo("trace"), lr=1e-3), backend="trace", elbo="trace")
    for _ in range(6):
        step(x[:32])
    step(x[:10])  # another shape: the eager step
    assert step.active and step.compiled_steps == 3  # 1 eager + 2 checked + 3 from the graph
    again = CompiledStep(SVIStep(vae, make_elbo("trace"), lr=1e-3), backend="trace", elbo="trace")
    again(x[:32]), again(x[:32])
    assert again.compiled_steps == 1  # kept on the story: no second trace or check


class Dynamic(Story):
    """The likelihood's scale depends on a Python number read from the batch: not static."""
    kind = "dynamic_test"

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(1, 4)

    def model(self, x, y=None):
        self.register_params()
        scale = 2.0 if float(x.mean()) > 0.5 else 1.0
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.net(z), scale).to_event(1), obs=x)

    def guide(self, x, y=None):
        self.register_params()
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x[:, :1] * 0 + self.net.bias[:1], 1.0).to_event(1))


class PythonRandom(Dynamic):
    kind = "python_random_test"

    def model(self, x, y=None):
        self.register_params()
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.net(z), 1.0 + random.random()).to_event(1), obs=x)


def test_dynamic_story_falls_back_with_one_notice(capsys):
    low, high = torch.zeros(8, 4) + 0.1, torch.ones(8, 4)
    story = Dynamic()
    step = CompiledStep(SVIStep(story, make_elbo("trace"), lr=1e-2), backend="trace", elbo="trace")
    step(low), step(low)  # eager; traced on `low` and checked: agrees
    assert step.active
    loss = step(high)  # the baked-in scale is wrong here: the check catches it
    assert not step.active and loss == loss
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compile:" in err[0] and "dynamic" in err[0] and "eagerly" in err[0]
    step(high)  # goes on eagerly, quietly
    assert capsys.readouterr().err == ""


def test_python_random_story_falls_back_through_fit(capsys):
    x = torch.rand(40, 4)
    fit_svi(PythonRandom(), x, epochs=2, batch_size=16, progress=False, compile="trace")
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Python or NumPy random" in err[0]


def test_compile_option_and_distributed_notice(capsys):
    assert check_compile(True) == compiled.DEFAULT_BACKEND and check_compile(False) is None
    with pytest.raises(ValueError, match="compile must be"):
        check_compile("fast")
    with pytest.raises(ValueError, match="compile must be"):
        fit_svi(VAE(12, z_dim=2, hidden=(4,)), _x(), epochs=1, compile="yes", progress=False)
    step = SVIStep(VAE(12, z_dim=2, hidden=(4,)), make_elbo("trace"), lr=1e-3)
    assert compiled.compile_step(step, "trace", elbo="trace", distributed=True) is step
    assert "--distributed" in capsys.readouterr().err


def test_resume_is_bit_identical(tmp_path):
    x = _x(80)

    def run(epochs, ckpt, resume=False):
        pyro.set_rng_seed(1)
        vae = VAE(12, z_dim=3, hidden=(8,))
        vae.fit(x, val=x[:16], epochs=epochs, batch_size=32, progress=False, compile="trace", checkpoint=ckpt,
                resume=resume, patience=None)
        return vae

    full = run(3, tmp_path / "a.pt")
    run(2, tmp_path / "b.pt")
    resumed = run(3, tmp_path / "b.pt", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert full.train_result.history[-1]["train_loss"] == resumed.train_result.history[-1]["train_loss"]


def test_cli_compile_runs(tmp_path, monkeypatch):
    from probgen.cli import main

    monkeypatch.setattr(compiled, "DEFAULT_BACKEND", "trace")  # the inductor warm-up is tested below
    assert main(["train", "--out", str(tmp_path), "vae", "--epochs", "1", "--z-dim", "2", "--hidden", "16",
                 "--compile", "--quiet"]) == 0
    assert (tmp_path / "vae.pt").exists()


def test_cli_compile_with_em_is_one_line(tmp_path, capsys):
    from probgen.cli import main

    assert main(["train", "--out", str(tmp_path), "gmm", "--compile"]) == 2
    err = capsys.readouterr().err
    assert "--compile" in err and "EM" in err and "Traceback" not in err
    assert not (tmp_path / "gmm.pt").exists()


@pytest.mark.slow
def test_inductor_matches_eager():
    """torch.compile of the graph (fallback_random: eager's draws); skipped where it cannot
    compile or takes longer than the suite can afford."""
    x = _x(64)
    vae = VAE(12, z_dim=2, hidden=(4,))
    step = CompiledStep(SVIStep(vae, make_elbo("trace"), lr=1e-3), backend="inductor", elbo="trace")
    step(x)
    t0 = time.perf_counter()
    step._build(step._key_of((x,)), (x,))
    if step._graph is None or isinstance(step._graph, torch.fx.GraphModule) or time.perf_counter() - t0 > 60:
        pytest.skip("inductor unavailable or too slow here")
    torch.manual_seed(3)
    loss, grads = step._graph([p.detach() for p in step.params], x)
    ref_loss, ref_grads = _eager_loss_and_grads(vae, x, 3)
    assert torch.allclose(loss, ref_loss, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-5, atol=1e-5)


def test_auto_replays_the_graph_for_a_static_story_on_a_long_fit(monkeypatch, capsys):
    """compile=None (the default): the built-in VAE replays its traced step once a fit plans
    AUTO_MIN_STEPS steps; the weights match an eager fit; nothing is printed."""
    monkeypatch.setattr(compiled, "AUTO_MIN_STEPS", 6)
    x = _x(100)
    made = []
    real = compiled.CompiledStep

    def spy(*a, **k):
        made.append(real(*a, **k))
        return made[-1]

    monkeypatch.setattr(compiled, "CompiledStep", spy)
    runs = {}
    for mode in (False, None):
        pyro.set_rng_seed(0)
        vae = VAE(12, z_dim=3, hidden=(8,))
        vae.fit(x, epochs=2, batch_size=32, progress=False, compile=mode, elbo="trace")
        runs[mode] = vae
    assert len(made) == 1 and made[0].backend == "trace" and made[0].compiled_steps > 0
    for a, b in zip(runs[False].state_dict().values(), runs[None].state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    assert capsys.readouterr().err == ""


def test_auto_stays_eager_for_short_fits_and_declared_dynamic_stories(monkeypatch, capsys):
    monkeypatch.setattr(compiled, "AUTO_MIN_STEPS", 6)
    made = []
    monkeypatch.setattr(compiled, "CompiledStep", lambda *a, **k: made.append(1))
    VAE(12, z_dim=3, hidden=(8,)).fit(_x(64), epochs=1, batch_size=32, progress=False)  # 2 steps < 6
    DeclaredDynamic().fit(torch.rand(100, 4), epochs=3, batch_size=32, progress=False)
    assert made == [] and capsys.readouterr().err == ""
    assert compiled.auto_backend(VAE(12, z_dim=3, hidden=(8,)), 10**6, distributed=True) is None
    assert compiled.auto_backend(VAE(12, z_dim=3, hidden=(8,)), 10**6) == "trace"  # on the CPU


class DeclaredDynamic(Dynamic):
    kind = "declared_dynamic_test"
    static_graph = False


def test_auto_tries_an_undeclared_story_and_falls_back_with_one_line(monkeypatch, capsys):
    """A user's story (static_graph not declared) is checked on its first batches: a dynamic one
    trains eagerly with one line saying why, and its result says so."""
    monkeypatch.setattr(compiled, "AUTO_MIN_STEPS", 6)
    story = Dynamic()
    result = story.fit(torch.rand(100, 4), epochs=3, batch_size=32, progress=False).train_result
    err = capsys.readouterr().err
    assert err.count("compile:") == 1 and "eagerly" in err and "Traceback" not in err
    assert result.step == "eager"

def test_graph_is_pruned_of_host_reads_but_keeps_its_draws():
    """Pyro's float reads of the loss (``_local_scalar_dense``: host syncs a CUDA graph cannot
    hold) are erased; random draws stay, so the stream of random numbers is eager's."""
    x = _x()
    vae = VAE(12, z_dim=3, hidden=(8,))
    step = CompiledStep(SVIStep(vae, make_elbo("trace"), lr=1e-3), backend="trace", elbo="trace")
    step(x)
    step._build(step._key_of((x,)), (x,))
    targets = [str(n.target) for n in step._graph.graph.nodes if n.op == "call_function"]
    assert not any("_local_scalar_dense" in t for t in targets)
    assert any("normal" in t or "randn" in t for t in targets)
    assert all(n.users or n.op == "output" for n in step._graph.graph.nodes
               if n.op == "call_function" and "normal" not in str(n.target) and "rand" not in str(n.target))


def test_cudagraph_on_the_cpu_says_so_and_replays_the_trace(capsys):
    vae = VAE(12, z_dim=3, hidden=(8,))
    result = vae.fit(_x(100), epochs=3, batch_size=32, progress=False, compile="cudagraph").train_result
    assert "cudagraph needs the story on CUDA" in capsys.readouterr().err
    assert result.step == "trace" and result.capture_seconds > 0

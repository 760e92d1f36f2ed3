"""The one adversarial trainer: the GAN game, k discriminator steps then one generator step.

**Only the discriminator ever sees real data**; the generator learns about the data exclusively
through D's gradients (Goodfellow et al. 2014). The objectives (minimax, non-saturating, WGAN-GP,
hinge) are functions of D's logits in :mod:`probgen.infer.gan_losses`.

Three stabilisers, each an option: two time-scale learning rates (``lr_d`` for D, ``lr`` for G;
Heusel et al. 2017), an exponential moving average of G's weights (a GAN built with ``ema=``
keeps ``generator_ema``, updated after every G step by :func:`update_ema` and used for
sampling; Yazıcı et al. 2019), and spectral normalisation of D's layers (a network option:
``GAN(spectral_norm=True)``).

:func:`fit_adversarial` takes the real data as a tensor (``epochs=``: passes over shuffled
minibatches, with checkpoints, resume and a per-epoch monitor) or as a sampler ``n -> batch``
(``steps=``: fresh batches every step, as the 1-D toy streams its target density).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data import batches
from ..nn import LOSSES, check_loss, check_positive_int  # noqa: F401 - LOSSES, check_loss re-exported
from ..runtime import log as runtime_log
from ..runtime import progress_bar, rng_state, set_rng_state
from .callbacks import Callbacks, Checkpointer, DivergenceError, batch_order
from .gan_losses import SCORES, discriminator_loss, generator_loss, gradient_penalty
from .hooks import Callback, Trainer, TrainResult

__all__ = ["LOSSES", "check_loss", "discriminator_loss", "generator_loss", "gradient_penalty", "make_optimizers",
           "OneProcess", "discriminator_step", "generator_step", "train_step", "update_ema", "fit_adversarial"]


# ---------------------------------------------------------------------------------------------
# One round of the game. `gan` offers generator, discriminator, z_dim, loss, device.
# ---------------------------------------------------------------------------------------------
def make_optimizers(gan: Any, lr: float = 2e-4, *, beta1: float = 0.5, beta2: float | None = None,
                    lr_d: float | None = None) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for D and for G, each over its own network only (β1 = 0.5 as in DCGAN; β2 0.9 for
    WGAN-GP). ``lr`` is G's learning rate; ``lr_d`` D's (two time scales; ``None``: ``lr``)."""
    lr_d = lr if lr_d is None else lr_d
    for name, v in (("lr", lr), ("lr_d", lr_d)):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    if not 0 <= beta1 < 1:
        raise ValueError(f"beta1 must be in [0, 1), got {beta1}")
    beta2 = beta2 if beta2 is not None else (0.9 if gan.loss == "wgan-gp" else 0.999)
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=lr_d, betas=(beta1, beta2))
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=(beta1, beta2))
    return opt_d, opt_g


class OneProcess:
    """The game in one process: the networks themselves, the whole batch, weight 1.

    :class:`probgen.infer.distributed.GameShards` offers the same four members under
    ``DistributedDataParallel`` (``D``/``G`` wrapped, ``part`` = this rank's shard).
    """

    def __init__(self, gan: Any):
        self.D, self.G = gan.discriminator, gan.generator

    def part(self, t: torch.Tensor) -> torch.Tensor:  # this process's rows: all of them
        return t

    def weight(self, n: int) -> float:  # this process's share of the batch mean
        return 1.0

    def mean(self, values: Sequence[torch.Tensor], n: int) -> list[float]:  # the batch's statistics
        return [float(v) for v in values]


@torch.no_grad()
def _d_stat(gan: Any, logits: torch.Tensor) -> torch.Tensor:
    return logits.detach().mean() if gan.loss in SCORES else torch.sigmoid(logits).mean()


def discriminator_step(gan: Any, real: torch.Tensor, opt_d: torch.optim.Optimizer, *, smoothing: float = 0.0,
                       noise: float = 0.0, gp_weight: float = 10.0, gp_one_sided: bool = False,
                       report: bool = True, nets: Any = None) -> dict:
    """One update of D: real data against detached fakes. G's parameters get no gradient.

    :param real: a real minibatch ``[n, *x_shape]`` — the only place real data enters.
    :param smoothing: one-sided label smoothing for the real targets.
    :param noise: instance-noise std added to *both* of D's inputs.
    :param report: return the loss and mean outputs (three host syncs); ``False`` returns ``{}``.
    :param nets: :class:`OneProcess` (default) or, under ``torchrun``, a
        :class:`probgen.infer.distributed.GameShards`: ``real`` is then the *global* batch.
    """
    nets = nets or OneProcess(gan)
    n = len(real)
    # every random draw is made for the whole (global) batch, then sharded: any number of ranks
    # sees the codes and noise one process would see
    z = torch.randn(n, gan.z_dim, device=real.device)  # n × z_dim
    if noise > 0:  # instance noise: blur both distributions so that their supports overlap
        real = real + noise * torch.randn_like(real)
        fake_noise = noise * torch.randn_like(real)
    gp_eps = (torch.rand(n, *([1] * (real.dim() - 1)), device=real.device)  # n × 1 × ...
              if gan.loss == "wgan-gp" else None)
    real = nets.part(real)
    with torch.no_grad():
        fake = gan.generator(nets.part(z))  # n_rank × *x_shape
    if noise > 0:
        fake = fake + nets.part(fake_noise)
    d_real, d_fake = nets.D(real), nets.D(fake)  # n_rank logits each
    d_loss = discriminator_loss(d_real, d_fake, gan.loss, smoothing=smoothing)
    if gan.loss == "wgan-gp":
        d_loss = d_loss + gradient_penalty(nets.D, real, fake, weight=gp_weight, one_sided=gp_one_sided,
                                           eps=nets.part(gp_eps))
    opt_d.zero_grad(set_to_none=True)
    (d_loss * nets.weight(n)).backward()  # DDP averages the ranks' gradients: weighted, that is the global mean's
    opt_d.step()
    if not report:
        return {}
    return dict(zip(("d_loss", "d_real", "d_fake"),
                    nets.mean([d_loss.detach(), _d_stat(gan, d_real), _d_stat(gan, d_fake)], n)))


def generator_step(gan: Any, m: int, opt_g: torch.optim.Optimizer, *, noise: float = 0.0, nets: Any = None) -> dict:
    """One update of G from ``m`` fresh codes. **No real data here**: G learns about the data
    only through D's verdict on G(z), by back-propagating through D, whose parameters are frozen
    meanwhile (no weight gradients for D, and under DDP no all-reduce of them; ``opt_g`` never
    holds them). ``nets``: as in :func:`discriminator_step` (``m`` is then the global count)."""
    nets = nets or OneProcess(gan)
    z = torch.randn(m, gan.z_dim, device=gan.device)  # m × z_dim, for the whole (global) batch
    fake = nets.G(nets.part(z))  # m_rank × *x_shape
    if noise > 0:
        fake = fake + noise * nets.part(torch.randn(m, *fake.shape[1:], device=fake.device, dtype=fake.dtype))
    D = gan.discriminator
    trainable = [p for p in D.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        g_loss = generator_loss(D(fake), gan.loss)  # the plain D: its DDP wrapper stays out of G's step
    finally:
        for p in trainable:
            p.requires_grad_(True)
    opt_g.zero_grad(set_to_none=True)
    (g_loss * nets.weight(m)).backward()
    opt_g.step()
    D.zero_grad(set_to_none=True)  # the D step's .grad is not G's business either
    update_ema(gan)
    return {"g_loss": nets.mean([g_loss.detach()], m)[0]}


@torch.no_grad()
def update_ema(gan: Any) -> None:
    """``G_ema ← d · G_ema + (1 − d) · G`` with ``d = gan.ema``, when the GAN keeps an average
    (``generator_ema`` is not ``None``: built with ``ema > 0``); batch-norm statistics are copied as they are."""
    shadow = gan.generator_ema
    if shadow is None:
        return
    decay = float(gan.ema)
    for s, p in zip(shadow.parameters(), gan.generator.parameters()):
        s.lerp_(p, 1.0 - decay)
    for s, b in zip(shadow.buffers(), gan.generator.buffers()):
        s.copy_(b)


def train_step(gan: Any, real_batches: Sequence[torch.Tensor], opt_d: torch.optim.Optimizer,
               opt_g: torch.optim.Optimizer, *, smoothing: float = 0.0, noise: float = 0.0, gp_weight: float = 10.0,
               gp_one_sided: bool = False, batch_size: int | None = None, nets: Any = None) -> dict:
    """One round of the game: k discriminator steps (one per real batch), then one generator step.
    ``nets``: see :func:`discriminator_step`.

    :return: the last D step's loss and mean outputs (probabilities D(x), D(G(z)); critic values
        for WGAN-GP) and the G step's loss.
    """
    last = len(real_batches) - 1
    for i, real in enumerate(real_batches):  # only the last D step's numbers are reported: no syncs before
        stats = discriminator_step(gan, real, opt_d, smoothing=smoothing, noise=noise, gp_weight=gp_weight,
                                   gp_one_sided=gp_one_sided, report=i == last, nets=nets)
    stats.update(generator_step(gan, batch_size or len(real_batches[-1]), opt_g, noise=noise, nets=nets))
    return stats


def _postfix(bar, stats: dict, more: dict | None = None) -> None:
    bar.set_postfix(D=f"{stats['d_loss']:.3f}", G=f"{stats['g_loss']:.3f}", **(more or {}),
                    **{"D(x)": f"{stats['d_real']:.2f}", "D(G(z))": f"{stats['d_fake']:.2f}"})


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------
def fit_adversarial(
    gan: Any,
    x: torch.Tensor | Callable[[int], torch.Tensor],
    *,
    y: torch.Tensor | None = None,
    val: torch.Tensor | None = None,
    val_y: torch.Tensor | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    lr: float = 2e-4,
    d_steps: int = 1,
    n_critic: int = 5,
    smoothing: float = 0.0,
    instance_noise: float = 0.0,
    gp_weight: float = 10.0,
    gp_one_sided: bool = False,
    beta1: float = 0.5,
    lr_d: float | None = None,
    lr_lambda: Callable[[int], float] | None = None,
    progress: bool = True,
    desc: str | None = None,
    checkpoint: str | Path | None = None,
    data: dict | None = None,
    resume: bool = False,
    monitor: Callable[[torch.Tensor], dict] | None = None,
    monitor_n: int = 500,
    collapse_drop: float = 0.2,
    on_step: Callable[[int, dict], dict | None] | None = None,
    callbacks: Sequence[Callback] = (),
    log: Callable[[str], None] | None = None,
    log_dir: str | Path | None = None,
    distributed: Any = None,
) -> TrainResult:
    """Play the GAN game on real data.

    :param gan: a :class:`probgen.models.GAN` (``generator``, ``discriminator``, ``generator_ema``,
        ``z_dim``, ``loss``, ``ema``, ``decode``, ``device``).
    :param x: real examples ``[n, *x_shape]`` (with ``epochs``), or a sampler ``n -> [n, *x_shape]``
        called for fresh batches every step (with ``steps``). ``y``, ``val``, ``val_y``: accepted
        for the trainers' common signature, not used (the generator never sees data; the GAN's
        ``end_fit`` uses ``val`` for its Parzen bandwidth).
    :param epochs: passes over a data tensor (each real batch feeds one D step).
    :param steps: generator steps on a sampler.
    :param d_steps: discriminator steps per generator step (k in Goodfellow et al. 2014).
    :param n_critic: critic steps per generator step for WGAN-GP (replaces ``d_steps``).
    :param smoothing: one-sided label smoothing (e.g. 0.1); not used by WGAN-GP.
    :param instance_noise: std of Gaussian noise added to D's inputs, annealed linearly to 0.
    :param gp_weight: λ of the WGAN-GP penalty; ``gp_one_sided``: penalise only norms above 1
        (see :func:`gradient_penalty`).
    :param lr: the generator's Adam learning rate (and D's unless ``lr_d`` is given).
    :param lr_d: the discriminator's learning rate (two time-scale update rule, Heusel et al.
        2017: e.g. ``lr=1e-4, lr_d=4e-4``); ``None``: ``lr``.
    :param beta1: Adam β1 (0.5, as in DCGAN).
    :param lr_lambda: learning-rate factor per generator step, ``LambdaLR`` on both optimizers
        (``None``: constant).
    :param progress: show the progress bar (``desc``: its label).
    :param checkpoint: (epochs) the model after every epoch goes here (atomic); the resumable
        state (optimizers, RNG, history) beside it as ``<stem>.last.pt``; ``data``: the data spec
        both record.
    :param resume: (epochs) continue from ``<stem>.last.pt`` if it exists.
    :param monitor: (epochs) ``fn(samples) -> dict`` run every epoch on ``monitor_n`` samples from
        fixed codes, e.g. a classifier's ``coverage``; when coverage falls ``collapse_drop`` below
        its best so far, a mode-collapse warning is logged (once per fall).
    :param on_step: (steps) ``fn(step, stats) -> dict | None`` after every step (snapshots,
        evaluation); a returned dict is shown beside the losses on the progress bar.
    :param callbacks: :class:`probgen.infer.Callback` objects; ``on_epoch_end`` gets each epoch's
        record (with ``steps``: each step's record), ``trainer.model`` is the GAN (a per-epoch sample
        grid: ``trainer.model.decode(trainer.model.fixed_z)``).
    :param log: where warnings go (default: :func:`probgen.runtime.log`).
    :param log_dir: write TensorBoard logs here (:mod:`probgen.infer.tensorboard`).
    :param distributed: (epochs) a :class:`probgen.infer.distributed.Distributed` inside a
        ``torchrun`` job: D and G train under ``DistributedDataParallel``, each rank on its shard of
        every global batch of ``batch_size``; rank 0 alone shows progress, writes checkpoints and
        logs, and runs ``monitor`` (``None``: one process).
    :return: history (one record per epoch or step), ``steps``, ``warnings``, ``seconds``.
    :raises DivergenceError: a loss or D's output became NaN/inf.
    """
    streamed = _check_game(x, epochs, steps, checkpoint, resume, monitor, distributed, batch_size=batch_size,
                           d_steps=d_steps, n_critic=n_critic, smoothing=smoothing, instance_noise=instance_noise)
    game = _Game(gan, d_steps=d_steps, n_critic=n_critic, lr=lr, beta1=beta1, lr_d=lr_d, lr_lambda=lr_lambda,
                 smoothing=smoothing, gp_weight=gp_weight, gp_one_sided=gp_one_sided, batch_size=batch_size)
    if distributed is not None and not distributed.is_main:  # rank 0 alone prints and writes
        progress, monitor, log_dir = False, None, None
    result = TrainResult()
    hooks = Callbacks(callbacks, Trainer("adversarial", gan, result), log_dir=log_dir)
    hooks.begin()
    desc = desc or f"train {gan.kind}"
    if streamed:
        _play_steps(game, x, steps, instance_noise, result, hooks, on_step,
                    progress_bar(range(1, steps + 1), enabled=progress, desc=desc, unit="step"))
    else:
        run = _Epochs(game, x, instance_noise, result, hooks, Checkpointer(gan, checkpoint, data=data),
                      distributed, _Monitor(monitor, monitor_n, collapse_drop, log or runtime_log))
        run.play(epochs, run.resume() if resume else None, progress=progress, desc=desc)
    if distributed is not None:  # batch-norm statistics: rank 0's everywhere (rank 0's file holds them)
        distributed.broadcast_(gan.buffers())
        game.nets = None  # the DDP wrappers go now, not at exit after the process group
    gan.eval()
    hooks.end()
    return result


def _check_game(x, epochs, steps, checkpoint, resume, monitor, distributed, *, batch_size: int, d_steps: int,
                n_critic: int, smoothing: float, instance_noise: float) -> bool:
    """One-line errors for options that do not fit together; returns whether ``x`` is a sampler."""
    streamed = callable(x) and not isinstance(x, torch.Tensor)
    if (epochs is None) == (steps is None):
        raise ValueError("give epochs= (passes over a data tensor) or steps= (a sampler), not both or neither")
    if streamed != (steps is not None):
        raise ValueError("steps= goes with a sampler n -> batch as data, epochs= with a data tensor")
    n_rounds = steps if streamed else epochs
    if isinstance(n_rounds, bool) or not isinstance(n_rounds, int) or n_rounds < 0:
        raise ValueError(f"{'steps' if streamed else 'epochs'} must be >= 0, got {n_rounds!r}")
    if streamed and (checkpoint is not None or resume or monitor is not None or distributed is not None):
        raise ValueError("checkpoint, resume, monitor and distributed need epochs= over a data tensor")
    check_positive_int("batch_size", batch_size)
    check_positive_int("d_steps", d_steps)
    check_positive_int("n_critic", n_critic)
    if not 0 <= smoothing < 0.5:
        raise ValueError(f"smoothing must be in [0, 0.5), got {smoothing}")
    if instance_noise < 0:
        raise ValueError(f"instance_noise must be >= 0, got {instance_noise}")
    return streamed


class _Game:
    """The players' optimizers and one round of the game: k discriminator steps, one generator step."""

    def __init__(self, gan: Any, *, d_steps: int, n_critic: int, lr: float, beta1: float, lr_d: float | None,
                 lr_lambda: Callable[[int], float] | None, smoothing: float, gp_weight: float, gp_one_sided: bool,
                 batch_size: int):
        self.gan, self.batch_size = gan, batch_size
        self.k = n_critic if gan.loss == "wgan-gp" else d_steps
        self.opt_d, self.opt_g = make_optimizers(gan, lr, beta1=beta1, lr_d=lr_d)
        self.scheds = ([] if lr_lambda is None
                       else [torch.optim.lr_scheduler.LambdaLR(o, lr_lambda) for o in (self.opt_d, self.opt_g)])
        self.options = dict(smoothing=smoothing, gp_weight=gp_weight, gp_one_sided=gp_one_sided, batch_size=batch_size)
        self.nets: Any = None  # OneProcess; under torchrun the GameShards of infer.distributed

    def play(self, real_batches: list[torch.Tensor], noise: float, where: str) -> dict:
        """One round on ``k`` real batches; its losses and D's mean outputs."""
        stats = train_step(self.gan, real_batches, self.opt_d, self.opt_g, noise=noise, nets=self.nets, **self.options)
        for sched in self.scheds:
            sched.step()
        if not all(math.isfinite(v) for v in stats.values()):
            raise DivergenceError(f"GAN losses became {stats} at {where}; try a smaller --lr or another --loss")
        return stats


def _play_steps(game: _Game, sample: Callable[[int], torch.Tensor], steps: int, instance_noise: float,
                result: TrainResult, hooks: Callbacks, on_step: Callable | None, bar) -> None:
    """``steps`` rounds, each on ``k`` fresh batches from the sampler: the generator never sees them.
    Each step's record goes to the epoch hooks (a streamed game has no epochs)."""
    gan, t0, shown = game.gan, time.perf_counter(), None
    gan.train()
    for step in bar:
        noise = instance_noise * max(0.0, 1 - (step - 1) / steps)  # annealed to 0
        stats = game.play([sample(game.batch_size) for _ in range(game.k)], noise, f"step {step}")
        result.steps = step
        hooks.step_end(None)  # the story's hook; callbacks get the step's record below
        more = on_step(step, stats) if on_step is not None else None
        shown = more or shown
        if more or step % 10 == 0:
            _postfix(bar, stats, shown)
        record = {"step": step, **stats}
        result.history.append(record)
        gan.eval()  # the epoch hooks see the model in eval mode
        stop = hooks.epoch_end(record)
        gan.train()
        if stop:
            result.stopped_early = True
            break
    result.seconds = time.perf_counter() - t0


class _Monitor:
    """The per-epoch check of ``n`` samples from fixed codes (e.g. a classifier's coverage) and the
    mode-collapse warning when coverage falls ``drop`` below its best (once per fall)."""

    def __init__(self, fn: Callable[[torch.Tensor], dict] | None, n: int, drop: float, log: Callable[[str], None]):
        self.fn, self.n, self.drop, self.log = fn, n, drop, log
        self.best, self.collapsed = -1.0, False

    def __call__(self, gan: Any, epoch: int, record: dict, result: TrainResult) -> None:
        if self.fn is None:
            return
        codes = torch.randn(self.n, gan.z_dim, generator=torch.Generator().manual_seed(4321))
        record.update({k: v for k, v in self.fn(gan.decode(codes)).items() if isinstance(v, (int, float, bool))})
        cov = record.get("coverage")
        if cov is None:
            return
        dropped = cov < self.best - self.drop + 1e-9
        if dropped and not self.collapsed:  # once per drop, not every epoch it stays low
            msg = (f"warning: possible mode collapse at epoch {epoch + 1}: classifier coverage "
                   f"{cov:.2f} fell from its best {self.best:.2f}")
            result.warnings.append(msg)
            record["mode_collapse_warning"] = True
            self.log(msg)
        self.collapsed = dropped
        self.best = max(self.best, cov)


class _Epochs:
    """Passes over shuffled minibatches of a data tensor, with checkpoints, resume and the monitor;
    :meth:`play` runs them, its steps in the methods below it."""

    def __init__(self, game: _Game, x: torch.Tensor, instance_noise: float, result: TrainResult, hooks: Callbacks,
                 ckpt: Checkpointer, distributed: Any, monitor: _Monitor):
        self.game, self.gan, self.x, self.instance_noise = game, game.gan, x, instance_noise
        self.result, self.hooks, self.ckpt, self.dist, self.monitor = result, hooks, ckpt, distributed, monitor
        self.start = 0

    def resume(self) -> torch.Tensor | None:
        """Optimizers, RNG, history, steps and the monitor's best from the resume file (if any);
        returns the batch order's generator state."""
        saved = self.ckpt.resume()
        if saved is None:
            return None
        trainer, optimizers = saved
        try:
            self.game.opt_d.load_state_dict(optimizers["d"])
            self.game.opt_g.load_state_dict(optimizers["g"])
            set_rng_state(trainer["rng"])
            self.start, self.result.history = trainer["epoch"], trainer["history"]
            self.result.steps, self.monitor.best = trainer["steps"], trainer["best_coverage"]
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            raise self.ckpt.cannot_resume(e) from None
        return trainer.get("shuffle_rng")

    def play(self, epochs: int, shuffle_state: torch.Tensor | None, *, progress: bool, desc: str) -> None:
        """The epochs from :attr:`start` to ``epochs``: train, monitor, hooks, files."""
        self.shuffle = batch_order(shuffle_state)
        smallest = self._ready()
        rounds = max(1, math.ceil(len(self.x) / self.game.batch_size) // self.game.k)
        total_steps = max(1, epochs * rounds)
        self.t0 = time.perf_counter()
        bar = progress_bar(range(self.start, epochs), enabled=progress, desc=desc)
        for epoch in bar:
            record = self.train_epoch(epoch, smallest, total_steps, bar if progress else None)
            self.monitor(self.gan, epoch, record, self.result)
            self.result.history.append(record)
            stop = self.hooks.epoch_end(record)  # the story's epoch_end, then the callbacks
            if self.dist is not None:  # under torchrun: rank 0's decision (--minutes)
                stop = self.dist.agree(stop)
            self.save(epoch)
            if stop:
                self.result.stopped_early = True
                break
        self.result.seconds = time.perf_counter() - self.t0

    def _ready(self) -> int:
        """After resuming, under torchrun: rank 0's state everywhere, D and G under DDP. Returns the
        smallest batch worth a step (a last global batch with fewer examples than ranks is not)."""
        if self.dist is None:
            return 1
        self.game.nets = self.dist.prepare_game(self.gan, self.shuffle)
        if not self.dist.is_main:
            self.ckpt.disable()
        return self.dist.world_size

    def train_epoch(self, epoch: int, smallest: int, total_steps: int, bar) -> dict:
        """One pass: a round of the game per ``k`` real batches; the epoch's record (eval mode)."""
        game, result = self.game, self.result
        self.gan.train()
        sums: dict[str, float] = {}
        pending: list[torch.Tensor] = []
        n_g = 0
        for xb, _ in batches(self.x, game.batch_size, shuffle=True, generator=self.shuffle):
            if len(xb) < smallest:
                continue
            pending.append(xb)
            if len(pending) < game.k:
                continue
            noise = self.instance_noise * max(0.0, 1 - result.steps / total_steps)  # annealed to 0
            stats = game.play(pending, noise, f"epoch {epoch + 1}")
            pending = []
            result.steps += 1
            n_g += 1
            # the story's hook every step; per-step D/G losses for callbacks that read them (TensorBoard)
            self.hooks.step_end({"step": result.steps, **stats} if self.hooks.callbacks else None)
            for key, v in stats.items():
                sums[key] = sums.get(key, 0.0) + v
            if bar is not None:
                _postfix(bar, stats)
        self.gan.eval()
        return {"epoch": epoch + 1, "steps": result.steps, "seconds": time.perf_counter() - self.t0,
                **{key: v / max(n_g, 1) for key, v in sums.items()}}

    def save(self, epoch: int) -> None:
        """The model after this epoch, and the resumable state beside it."""
        result = self.result
        self.ckpt.save_best({"epoch": epoch + 1, "history": result.history})
        if self.ckpt.last is not None:
            self.ckpt.save_last({"epoch": epoch + 1, "history": result.history, "steps": result.steps,
                                 "best_coverage": self.monitor.best, "rng": rng_state(),
                                 "shuffle_rng": self.shuffle.get_state()},
                                {"d": self.game.opt_d.state_dict(), "g": self.game.opt_g.state_dict()})

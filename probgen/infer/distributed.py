"""Multi-process SVI and GAN training on PyTorch's own engine: ``DistributedDataParallel`` launched
by ``torchrun``.

One process per CPU share or per GPU (``gloo`` on CPU, ``NCCL`` on GPU). Every process
("rank") builds the same model, receives rank 0's parameters and batch order, and walks the
same shuffled order of *global* batches; each rank computes the ELBO of its strided shard
``batch[rank::W]`` of every global batch (what ``DistributedSampler`` gives, without padding:
no example counts twice). The loss module -- Pyro's ELBO as a module with the story inside,
:class:`probgen.infer.objective.Objective` -- is wrapped in
``torch.nn.parallel.DistributedDataParallel``, which all-reduces the gradients during
``backward``. DDP averages over ranks while Pyro's losses are sums over the ``data`` plate, so
each rank scales its loss by ``W``: every rank then applies the gradient of the whole global
batch, exactly what one process with ``batch_size`` computes, and the ranks stay identical.
Rank 0 alone shows the progress bar and writes checkpoints and logs.

Launch::

    torchrun --nproc_per_node=2 -m probgen train vae --data digits --distributed

Use from Python (inside a ``torchrun`` job)::

    from probgen.infer.distributed import Distributed
    dist = Distributed.from_env("cpu")      # or "cuda": rank r uses cuda:LOCAL_RANK
    model = VAE(64).to(dist.device)
    model.fit(x, distributed=dist, checkpoint="vae.pt")   # rank 0 writes vae.pt

The hook in :func:`probgen.infer.svi.fit_svi` is small: ``distributed.prepare(step, generator)``
wraps the step's loss module in DDP and shards its batches, ``distributed.mean_loss`` replaces
the validation loss, and non-zero ranks get no progress bar and no checkpoint paths.

The GAN (:func:`probgen.infer.adversarial.fit_adversarial`, ``probgen train gan --distributed``):
``distributed.prepare_game(gan, generator)`` returns :class:`GameShards`, D and G each in its own
DDP module. Every rank holds rank 0's random state, so the codes ``z``, the instance noise and
the gradient-penalty mixing weights are drawn for the *global* batch and then sharded: the ranks
together see exactly what one process sees. The GAN's losses are means, so each rank weights its
shard's loss by ``W · n_rank / n``; DDP's average is then the global batch's gradient. In G's step
D runs as the plain module with its parameters frozen (no D weight gradients, no all-reduce of
them). Batch norm normalises per shard on the CPU (``SyncBatchNorm`` on CUDA).
"""
from __future__ import annotations

import atexit
import gc
import os
import sys
from datetime import timedelta

import pyro
import torch
import torch.distributed as tdist

from ..runtime import rng_state, set_rng_state

__all__ = ["Distributed", "GameShards", "launched", "shard", "finish"]

#: environment variables that torchrun sets in every process it starts
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True inside a process started by ``torchrun`` (or with its environment variables set)."""
    return all(k in os.environ for k in LAUNCH_ENV)


def shard(x: torch.Tensor | None, rank: int, world_size: int) -> torch.Tensor | None:
    """Rows ``rank, rank + W, rank + 2W, ...`` of ``x`` (a view; ``None`` stays ``None``).

    Applied to every batch of one shared shuffled order, this is ``DistributedSampler``'s
    ``indices[rank::W]`` without the padding.
    """
    return None if x is None else x[rank::world_size]


class Distributed:
    """This process's place in a ``torch.distributed`` job, and the DDP set-up that keeps
    all ranks in lockstep.

    Build it with :meth:`from_env` (reads ``torchrun``'s ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``) and pass it as ``fit(..., distributed=...)``.

    :param rank: this process's index in ``0..world_size-1``.
    :param world_size: number of processes.
    :param local_rank: index on this machine (selects the GPU).
    :param device: where this rank's model, data and collectives live.
    """

    def __init__(self, *, rank: int, world_size: int, local_rank: int, device: torch.device):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device = torch.device(device)

    # -- set-up ---------------------------------------------------------------------------
    @classmethod
    def from_env(cls, device: str | torch.device = "cpu", *, backend: str | None = None,
                 timeout_s: float = 1800.0) -> "Distributed":
        """Join the ``torchrun`` job this process belongs to (initialising the process group once).

        :param device: ``cpu`` or ``cuda``; with CUDA, rank ``r`` uses ``cuda:LOCAL_RANK``
            whatever index was given.
        :param backend: ``gloo`` or ``nccl`` (default: ``nccl`` for CUDA, ``gloo`` for CPU).
        :param timeout_s: how long a collective may wait for a missing rank.
        :raises ValueError: not started by ``torchrun``, or no GPU for this rank.
        """
        if not launched():
            raise ValueError("--distributed needs a torchrun launch "
                             "(torchrun --nproc_per_node=N -m probgen train ...); RANK/WORLD_SIZE are not set")
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ValueError(f"--device {device!r}: not a device (use cpu or cuda)") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"--device {device}: CUDA is not available on this machine")
            if local >= torch.cuda.device_count():
                raise ValueError(f"LOCAL_RANK {local} needs GPU {local}, but only "
                                 f"{torch.cuda.device_count()} are visible: use --nproc_per_node <= GPUs")
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        elif dev.type != "cpu":
            raise ValueError(f"--device {device}: distributed training supports cpu and cuda")
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        if not tdist.is_initialized():
            tdist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                                     device_id=dev if dev.type == "cuda" else None)
            atexit.register(_shutdown)
        return cls(rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local, device=dev)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.device.type == "cuda":
            tdist.barrier(device_ids=[self.device.index])
        else:
            tdist.barrier()

    def broadcast_(self, tensors) -> None:
        """Overwrite ``tensors`` (in place, any dtype) with rank 0's values."""
        with torch.no_grad():
            for t in tensors:
                src = t.detach()  # same storage as t
                buf = src if src.device == self.device and src.is_contiguous() else src.contiguous().to(self.device)
                tdist.broadcast(buf, src=0)
                if buf.data_ptr() != src.data_ptr():
                    src.copy_(buf)

    def broadcast_object(self, obj):
        """Rank 0's value of a small picklable ``obj`` on every rank."""
        box = [obj]
        tdist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def prepare(self, step, generator: torch.Generator) -> None:
        """Called by :func:`probgen.infer.svi.fit_svi` before the first epoch: give every rank
        rank 0's parameters, buffers and batch order, give each rank its own noise stream,
        and make ``step`` (a :class:`probgen.infer.objective.SVIStep`) train through DDP on this
        rank's shard of each global batch.

        :param step: the SVI step whose loss module is wrapped.
        :param generator: the CPU generator that shuffles the global batches (set in place).
        """
        from torch.nn.parallel import DistributedDataParallel

        story = step.story
        if story.device != self.device:
            raise ValueError(f"the model is on {story.device}, but this rank trains on {self.device}: "
                             f"move it with model.to(dist.device) first")
        self.broadcast_(story.state_dict().values())  # identical start, whatever each rank drew
        generator.set_state(self.broadcast_object(generator.get_state()))
        # the latent noise must differ between ranks (else shard i and j share their z draws)
        base = self.broadcast_object(int(torch.randint(0, 2**31 - 1, (1,))))
        pyro.set_rng_seed(base + self.rank)
        ids = [self.device.index] if self.device.type == "cuda" else None
        step.module = _Sharded(DistributedDataParallel(step.objective, device_ids=ids), self.rank, self.world_size)
        step.grad_scale = float(self.world_size)  # DDP averages; the global batch's gradient is the sum
        step.loss_value = self.global_loss

    def prepare_game(self, gan, generator: torch.Generator) -> "GameShards":
        """Called by :func:`probgen.infer.adversarial.fit_adversarial` before the first epoch: give
        every rank rank 0's weights, buffers, batch order and random state (the codes of each
        global batch are drawn alike everywhere, then sharded), and wrap D and G in DDP.

        :param gan: a :class:`probgen.models.GAN` on this rank's device.
        :param generator: the CPU generator that shuffles the global batches (set in place).
        :return: the ``nets`` the adversarial steps take.
        """
        if gan.device != self.device:
            raise ValueError(f"the model is on {gan.device}, but this rank trains on {self.device}: "
                             f"move it with model.to(dist.device) first")
        if self.device.type == "cuda":  # batch statistics over the global batch (SyncBatchNorm is CUDA-only)
            gan.generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(gan.generator)
            gan.discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(gan.discriminator)
        self.broadcast_(gan.state_dict().values())
        generator.set_state(self.broadcast_object(generator.get_state()))
        set_rng_state(self.broadcast_object(rng_state()))
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(self.broadcast_object(torch.cuda.get_rng_state(self.device)), self.device)
        return GameShards(self, gan)

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (a stop decision: a time limit read on rank 0's clock)."""
        return bool(self.broadcast_object(bool(flag)))

    def global_loss(self, loss: torch.Tensor) -> float:
        """The loss of the whole global batch (the sum of the shards' losses; the same float on every rank)."""
        t = loss.detach().reshape(1).to(torch.float64)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return float(t)

    # -- validation -----------------------------------------------------------------------
    def mean_loss(self, elbo, story, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> float:
        """Loss per example over ``x``, each rank scoring its shard (the same float everywhere,
        so early stopping decides alike on every rank)."""
        xs, ys = shard(x, self.rank, self.world_size), shard(y, self.rank, self.world_size)
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(xs), batch_size):
                yb = None if ys is None else ys[start:start + batch_size]
                total += float(elbo.loss(story.model, story.guide, xs[start:start + batch_size], yb))
        t = torch.tensor([total], dtype=torch.float64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return float(t) / len(x)

    def __repr__(self) -> str:
        return f"Distributed(rank={self.rank}, world_size={self.world_size}, device={self.device})"


class _Sharded(torch.nn.Module):
    """Gives the DDP-wrapped loss module this rank's shard of each global batch."""

    def __init__(self, ddp: torch.nn.Module, rank: int, world_size: int):
        super().__init__()
        self.ddp, self.rank, self.world_size = ddp, rank, world_size

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        xs, ys = shard(x, self.rank, self.world_size), shard(y, self.rank, self.world_size)
        return self.ddp(xs) if ys is None else self.ddp(xs, ys)


class GameShards:
    """The GAN's D and G, each in its own DDP module, and this rank's part of every global batch:
    the ``nets`` of :func:`probgen.infer.adversarial.discriminator_step` and ``generator_step``
    (:class:`probgen.infer.adversarial.OneProcess` is the one-process twin)."""

    def __init__(self, dist: Distributed, gan):
        from torch.nn.parallel import DistributedDataParallel

        ids = [dist.device.index] if dist.device.type == "cuda" else None
        self.dist = dist
        self.D = DistributedDataParallel(gan.discriminator, device_ids=ids)
        self.G = DistributedDataParallel(gan.generator, device_ids=ids)

    def part(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (``DistributedSampler``'s strided shard)."""
        return shard(t, self.dist.rank, self.dist.world_size)

    def _share(self, n: int) -> float:
        return len(range(self.dist.rank, n, self.dist.world_size)) / n

    def weight(self, n: int) -> float:
        """Factor on this rank's mean loss so that DDP's average over ranks is the mean over all ``n``."""
        return self.dist.world_size * self._share(n)

    def mean(self, values, n: int) -> list[float]:
        """Global-batch means from this rank's shard means (one all-reduce; the same floats on every rank)."""
        share = self._share(n)
        t = torch.stack([v.detach().to(torch.float64) for v in values])
        t = t * share if share > 0 else torch.zeros_like(t)  # an empty shard's mean is NaN: it counts 0
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t.tolist()


def finish(code: int = 0) -> None:
    """End a ``torchrun`` rank: tear the process group down and leave at once with ``code``,
    skipping the interpreter's shutdown, where gloo's run-loop thread can abort a finished job
    ("terminate called without an active exception"). Outside a job: ``sys.exit(code)``."""
    if tdist.is_available() and tdist.is_initialized():
        _shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        # DDP modules sit in reference cycles that hold the process group: freed now, not by the
        # interpreter's last collection, where gloo's threads would need the GIL and abort the process
        gc.collect()
        tdist.destroy_process_group()

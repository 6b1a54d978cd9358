"""Data-parallel PPO on torch.distributed: what every rank of a `torchrun` run shares.

Every rank runs the same program (CleanRL's `ppo_atari_multigpu.py` layout): it owns
`num_envs` training environments, collects its own rollout and takes the same optimiser steps
as every other rank, because before each step the gradients are averaged with one flat
all-reduce. What makes the ranks agree:

- rank 0's initial parameters are broadcast (`broadcast_parameters`);
- environment `i` of rank `r` is reset with `seed + r * num_envs + i` (`env_seed`);
- the learner's generator (action samples, minibatch order) of rank `r` is seeded with
  `learner_seed(seed, r)`: the seed itself on rank 0 (so a world of one is the ordinary
  trainer bit for bit), a NumPy `SeedSequence` child of it on the others;
- the gradients of each minibatch are the mean over ranks, taken before gradient clipping
  (`average_gradients`);
- the advantages are z-scored with the mean and standard deviation of every rank's batch
  (`normalize_advantages`), and the loss statistics (approximate KL included) are averaged
  over ranks (`average_metrics`), so any decision taken from them is the same everywhere;
- only rank 0 evaluates and writes; its stop decision is broadcast (`agree`);
- rank 0's checkpoints also hold the generator and environment state of every other rank
  (`gather_rank_states`, under the key `distributed`), so that `--resume` under the same world
  size continues exactly; `rank_view` gives each rank its own part back (and refuses
  another world size).

Backend: NCCL when the run is on CUDA (each rank on `cuda:<LOCAL_RANK>`, which must exist),
gloo on CPU. Every collective waits at most `timeout_s` (`CHECKED_RL_DIST_TIMEOUT_S`, default
`DEFAULT_TIMEOUT_S`): a rank that fails or hangs makes the others stop with `PeerFailure`
instead of waiting forever. `torchrun` also stops the remaining ranks with SIGTERM when one
exits with an error; `join` turns that signal into `PeerFailure` too, so rank 0 still saves the
last completed update.
"""

import datetime
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from checked_rl.runtime.returns import NORMALIZE_EPS, normalize_advantages

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "GRADIENTS",
    "TIMEOUT_VARIABLE",
    "DataParallel",
    "PeerFailure",
    "ReplicaMismatch",
    "env_seed",
    "join",
    "launched",
    "learner_seed",
    "parameter_fingerprint",
    "rank_view",
    "validate_rank_states",
]

DEFAULT_TIMEOUT_S = 300.0
"""Seconds a collective waits for the other ranks before it fails (rank 0's evaluation and
checkpoint writing happen while the others wait, so this bounds them too)."""

TIMEOUT_VARIABLE = "CHECKED_RL_DIST_TIMEOUT_S"
"""Environment variable that overrides `DEFAULT_TIMEOUT_S`."""


GRADIENTS = "averaging the gradients"
"""The key of the gradient all-reduce in `DataParallel.seconds`."""


class PeerFailure(RuntimeError):
    """Another rank failed, left or hung: this rank stops (its own state is not at fault)."""


class ReplicaMismatch(RuntimeError):
    """The ranks' parameters differ after an update: data parallelism is broken."""


def launched() -> bool:
    """Whether this process was started by `torchrun` (or another launcher that sets the
    `RANK`, `WORLD_SIZE` and `LOCAL_RANK` variables of torch.distributed)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def learner_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s learner generator: `seed` on rank 0, otherwise the first 64
    bits of NumPy's `SeedSequence(seed, spawn_key=(rank,))` (independent streams per rank).

    >>> learner_seed(7, 0)
    7
    >>> learner_seed(7, 1) == learner_seed(7, 1) != learner_seed(7, 2)
    True
    """
    if rank == 0:
        return seed
    words = np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def env_seed(seed: int, rank: int, num_envs: int) -> int:
    """The reset seed of rank `rank`'s session: its environment `i` gets this + `i`.

    >>> [env_seed(10, rank, 4) for rank in range(3)]
    [10, 14, 18]
    """
    return seed + rank * num_envs


def join(device: str | torch.device) -> "DataParallel":
    """Join the process group `torchrun` set up; the `DataParallel` of this rank.

    On CUDA each rank takes `cuda:<LOCAL_RANK>` and the backend is NCCL; on CPU it is gloo.
    Raises ValueError (one line) when CUDA is asked for and this rank has no device.
    """
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    device = torch.device(device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"rank {rank} (local rank {local_rank}) has no CUDA device: this machine has "
                f"{torch.cuda.device_count()}; start at most that many ranks per machine"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    timeout = float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S))
    if not timeout > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, "
                         f"got {os.environ[TIMEOUT_VARIABLE]!r}")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout),
                            device_id=device if backend == "nccl" else None)
    return DataParallel(rank, world_size, device, backend)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """torchrun ends the other ranks with SIGTERM when one fails."""
    raise PeerFailure("stopped by the launcher (SIGTERM): another rank failed")


class DataParallel:
    """One rank of a data-parallel run: its place, and the collectives the trainer needs.

    Attributes:
        rank: this process's rank in [0, world_size).
        world_size: the number of ranks.
        device: where this rank's networks and session live.
        backend: "gloo" or "nccl".
        seconds: wall time spent so far in each kind of collective (waiting for the other
            ranks included), by what it was for: `GRADIENTS` and the others (for benchmarks).
    """

    def __init__(self, rank: int, world_size: int, device: torch.device, backend: str) -> None:
        self.rank = rank
        self.world_size = world_size
        self.device = device
        self.backend = backend
        self.seconds: dict[str, float] = {}

    @property
    def writes(self) -> bool:
        """Whether this rank evaluates and writes the run's files (rank 0)."""
        return self.rank == 0

    def close(self) -> None:
        """Leave the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()

    @contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        """Time a collective and turn a failure of the group into `PeerFailure`."""
        tick = time.perf_counter()
        try:
            yield
        except PeerFailure:
            raise
        except (RuntimeError, dist.DistError) as error:
            detail = " ".join(str(error).split())[:300]
            raise PeerFailure(
                f"rank {self.rank}: {what} failed, another rank failed, left or hung "
                f"({type(error).__name__}: {detail})"
            ) from error
        finally:
            self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - tick

    def check_config(self, num_envs: int, eval_seed_offset: int) -> None:
        """Refuse a world whose training seeds would reach the evaluation seeds."""
        if self.world_size * num_envs > eval_seed_offset:
            raise ValueError(
                f"world size {self.world_size} x num_envs {num_envs} training environments "
                f"would reach the evaluation seeds (seed + {eval_seed_offset})"
            )

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers."""
        with self._collective("broadcasting the parameters"), torch.no_grad():
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)

    def average_gradients(self, parameters: list[Tensor]) -> None:
        """Replace each parameter's gradient by its mean over ranks: one flat all-reduce.

        A parameter without a gradient counts as a zero gradient (and gets one).
        """
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]
        flat = torch.cat([grad.reshape(-1) for grad in grads])
        with self._collective(GRADIENTS):
            dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for parameter in parameters:
            size = parameter.numel()
            parameter.grad = flat[offset:offset + size].view_as(parameter).clone()
            offset += size

    def normalize_advantages(self, advantages: Tensor) -> Tensor:
        """The z-score of `runtime.returns.normalize_advantages` with the mean and population
        standard deviation of every rank's advantages together (exactly that function in a
        world of one)."""
        if self.world_size == 1:
            return normalize_advantages(advantages)
        count = torch.tensor([advantages.sum(dtype=torch.float64), advantages.numel()],
                             dtype=torch.float64, device=advantages.device)
        with self._collective("the advantage mean"):
            dist.all_reduce(count)
        mean = count[0] / count[1]
        centred = advantages.to(torch.float64) - mean
        squares = (centred * centred).sum().reshape(1)
        with self._collective("the advantage variance"):
            dist.all_reduce(squares)
        std = torch.sqrt(squares[0] / count[1])
        return (centred / (std + NORMALIZE_EPS)).to(advantages.dtype)

    def average_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each metric's mean over ranks (float64; exact in a world of one)."""
        values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=self.device)
        with self._collective("averaging the loss statistics"):
            dist.all_reduce(values)
        return dict(zip(metrics, (values / self.world_size).tolist(), strict=True))

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag`, on every rank (the stop decision)."""
        value = torch.tensor([int(flag)], dtype=torch.int64, device=self.device)
        with self._collective("sharing the stop decision"):
            dist.broadcast(value, src=0)
        return bool(value.item())

    def check_replicas(self, model: nn.Module) -> None:
        """Raise `ReplicaMismatch` on every rank unless every rank's parameters are bit for bit
        rank 0's (an exact integer fingerprint of the float bits; one all-gather)."""
        fingerprint = parameter_fingerprint(model).to(self.device)
        gathered = [torch.zeros_like(fingerprint) for _ in range(self.world_size)]
        with self._collective("comparing the parameters"):
            dist.all_gather(gathered, fingerprint)
        different = [rank for rank, value in enumerate(gathered) if not torch.equal(value,
                                                                                     gathered[0])]
        if different:
            raise ReplicaMismatch(f"the parameters of ranks {different} differ from rank 0's")

    def gather_rank_states(self, state: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """On rank 0: `{"world_size": K, "ranks": [state of rank 1, ..., rank K-1]}` for the
        checkpoint; None on the other ranks and in a world of one (nothing to add)."""
        if self.world_size == 1:
            return None
        own = state()
        gathered: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        with self._collective("gathering the rank states"):
            dist.gather_object(own, gathered, dst=0)
        if gathered is None:
            return None
        return {"world_size": self.world_size, "ranks": gathered[1:]}

def rank_view(saved: dict[str, Any], parallel: DataParallel | None) -> dict[str, Any]:
    """`saved` with the `rng` and `session` of this rank (`parallel`, None outside a distributed
    run); ValueError when the checkpoint was saved with another world size."""
    rank, world_size = (0, 1) if parallel is None else (parallel.rank, parallel.world_size)
    states = saved.get("distributed")
    saved_world = 1 if states is None else states["world_size"]
    if saved_world != world_size:
        raise ValueError(
            f"the checkpoint was saved by {saved_world} rank(s); resume it with "
            f"{saved_world}, not {world_size}"
        )
    if rank == 0:
        return saved
    own = states["ranks"][rank - 1]
    return {**saved, "rng": own["rng"], "session": own["session"]}


def parameter_fingerprint(model: nn.Module) -> Tensor:
    """An int64 that changes with any bit of any floating parameter: the sum of the 32-bit
    words of the parameters, each weighted by its position (mod 65521) + 1."""
    words = torch.cat([
        parameter.detach().reshape(-1).contiguous().view(torch.int32).to(torch.int64)
        if parameter.element_size() == 4
        else parameter.detach().reshape(-1).to(torch.float64).view(torch.int64)
        for parameter in model.parameters()
    ])
    weights = torch.arange(words.numel(), device=words.device) % 65521 + 1
    return (words * weights).sum().reshape(1)


def validate_rank_states(value: Any) -> None:
    """Raise TypeError unless `value` is a checkpoint's `distributed` entry."""
    if not isinstance(value, dict) or set(value) != {"world_size", "ranks"}:
        raise TypeError("distributed must be a dict of world_size and ranks")
    world, ranks = value["world_size"], value["ranks"]
    if (isinstance(world, bool) or not isinstance(world, int) or world < 2
            or not isinstance(ranks, list) or len(ranks) != world - 1):
        raise TypeError(f"distributed must hold world_size >= 2 and world_size - 1 rank states, "
                        f"got world_size {world!r}")
    for state in ranks:
        if not isinstance(state, dict) or set(state) != {"rng", "session"}:
            raise TypeError("each rank state must be a dict of rng and session")
        rng = state["rng"]
        if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
            raise TypeError("each rank's rng must be a 1-dimensional uint8 tensor")
        if not (state["session"] is None or isinstance(state["session"], dict)):
            raise TypeError("each rank's session must be a state dict or None")

"""Memory limits checked before anything is allocated.

A size that cannot fit (`--num-envs 1000000000`, `--hidden 1000000000`) is refused up front with
an estimate and the limit, instead of an allocator traceback minutes later. The estimates are
deliberately rough (within a small factor) and count what grows with each option:

- `num_envs` x `horizon`: the rollout and its training batch (observations twice, the per-step
  numbers, the logits) plus the environments themselves;
- `hidden`: the actor's and critic's parameters with their gradients and Adam moments, and the
  activations of one minibatch;
- `eval_episodes` (or `eval --episodes`): one environment per episode.

The limit is `MEMORY_FRACTION` of this machine's physical memory.
"""

import math
import os

__all__ = ["MEMORY_FRACTION", "PER_ENV_BYTES", "check_sizes", "memory_limit"]

MEMORY_FRACTION = 0.5
"""Share of the physical memory one run may plan to use."""

PER_ENV_BYTES = {"spec": 4_000, "torch": 0, "gymnasium": 40_000, "gymnasium-subprocess": 40_000}
"""Bytes per environment beyond its observation, by session kind (Python objects per env)."""

FLOAT = 4
"""Bytes of a float32."""


def memory_limit() -> int:
    """`MEMORY_FRACTION` of the physical memory, in bytes (16 GiB when it cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 32 << 30
    return int(total * MEMORY_FRACTION)


def check_sizes(
    *,
    kind: str,
    observation_shape: tuple[int, ...],
    n_actions: int,
    num_envs: int = 1,
    horizon: int = 1,
    hidden: int = 1,
    eval_episodes: int = 1,
    minibatches: int = 1,
    limit: int | None = None,
    episodes_option: str = "--eval-episodes",
) -> None:
    """Raise ValueError naming the option whose size would not fit in `limit` bytes (the
    evaluation episodes are named `episodes_option`)."""
    limit = memory_limit() if limit is None else limit
    observation = math.prod(observation_shape) * FLOAT
    per_env = observation * 4 + PER_ENV_BYTES.get(kind, 40_000)
    steps = num_envs * horizon
    rollout = steps * (observation * 4 + (12 + 2 * n_actions) * FLOAT * 2)
    inputs = math.prod(observation_shape)
    parameters = 2 * (inputs * hidden + hidden * hidden + hidden * (n_actions + 1) + 4 * hidden)
    network = parameters * FLOAT * 4
    activations = (steps // minibatches) * hidden * FLOAT * 8
    estimates = {
        "--num-envs": (num_envs, num_envs * per_env + rollout + activations, "the training "
                       f"environments, a rollout of {horizon} steps each and its activations"),
        "--hidden": (hidden, network, "the networks, their gradients and Adam's moments"),
        episodes_option: (eval_episodes, eval_episodes * per_env,
                            "one evaluation environment per episode"),
    }
    total = sum(bytes_ for _, bytes_, _ in estimates.values())
    if total <= limit:
        return
    option, (value, bytes_, what) = max(estimates.items(), key=lambda item: item[1][1])
    raise ValueError(
        f"{option} {value}: needs about {_size(bytes_)} for {what}, more than the limit of "
        f"{_size(limit)} ({MEMORY_FRACTION:.0%} of this machine's memory)"
    )


def _size(count: int) -> str:
    """Bytes in GB or MB, rounded.

    >>> _size(8_000_000_000), _size(3_500_000)
    ('8 GB', '4 MB')
    """
    if count >= 10**9:
        return f"{count / 10**9:.0f} GB"
    return f"{count / 10**6:.0f} MB"

"""Checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a plain dict saved with `torch.save` and loaded with
`torch.load(weights_only=True)`, so it holds only tensors, numbers, strings, lists and dicts:

- `format`: `CHECKPOINT_FORMAT`;
- `config`: the `PPOConfig` as a dict; `run`: session kind, environment id, device;
- `network`: the constructor arguments of the `ActorCritic`;
- `update`: updates completed; `env_steps`: environment steps trained on;
- `model`, `optimizer`: state dicts;
- `rng`: the state of the run's torch generator (a uint8 tensor);
- `session`: the training session's `state_dict()` (its tensors on CPU), or None for a kind
  that cannot capture its environments (`StateNotCapturedError`: the Gymnasium kinds);
- `log`: the training log so far.

Files are written atomically (temporary file + `os.replace`).
"""

import io
import os
from pathlib import Path
from typing import Any

import torch

from checked_rl.runtime.ppo.trainlog import atomic_write_bytes

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = 2
"""Version of the checkpoint layout; loading refuses any other. 2: `session` is the session's
`state_dict()` and `run` names its `kind`."""

REQUIRED_KEYS = frozenset(
    {"format", "config", "run", "network", "update", "env_steps", "model", "optimizer", "rng",
     "session", "log"}
)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not in this package's layout."""


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> None:
    """Write `checkpoint` to `path` atomically, creating the parent directory."""
    missing = sorted(REQUIRED_KEYS - set(checkpoint))
    if missing:
        raise CheckpointError(f"checkpoint to save lacks keys {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors on CPU, `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many kinds on a file that is no checkpoint
        first = (str(error).strip().splitlines() or ["(no message)"])[0]
        raise CheckpointError(
            f"checkpoint {path} is not readable (expected a file written by save_checkpoint): "
            f"torch.load raised {type(error).__name__}: {first}"
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint)
        raise CheckpointError(
            f"checkpoint {path} has format {found!r}, expected {CHECKPOINT_FORMAT}"
        )
    missing = sorted(REQUIRED_KEYS - set(checkpoint))
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks keys {missing}")
    return checkpoint

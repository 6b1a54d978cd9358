"""Checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a plain dict saved with `torch.save` and loaded with
`torch.load(weights_only=True)`, so it holds only tensors, numbers, strings, lists and dicts:

- `format`: `CHECKPOINT_FORMAT`;
- `config`: the `PPOConfig` as a dict; `run`: session kind, environment id, device;
- `network`: the constructor arguments and head of the `ActorCritic` (`describe()`; without
  a `head`, as written before Box actions, it is categorical);
- `update`: updates completed; `env_steps`: environment steps trained on;
- `model`, `optimizer`: state dicts;
- `rng`: the state of the run's torch generator (a uint8 tensor);
- `session`: the training session's `state_dict()` (its tensors on CPU), or None for a kind
  that cannot capture its environments (`StateNotCapturedError`: the Gymnasium kinds);
- `log`: the training log so far;
- `normalization` (optional; absent in older files): the running statistics of
  `runtime.ppo.normalizing` when the config normalises observations or rewards, else None.

Files are written atomically (temporary file + `os.replace`); a successful save removes the
temporary files that interrupted saves of the same path left behind. Loading validates the
whole layout before anything uses it (`validate_checkpoint`): the format version, every
field's type, the config, and the model's parameter names and shapes against the network the
checkpoint itself describes. Anything else is one `CheckpointError` line; loading never runs
code from the file (`weights_only=True`) and never imports a module it names.
"""

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.normalizing import validate_normalization
from checked_rl.runtime.ppo.trainlog import TrainLog, atomic_write_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "load_checkpoint",
    "save_checkpoint",
    "validate_checkpoint",
]

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
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by interrupted saves
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors on CPU, `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many kinds on a file that is no checkpoint
        raise CheckpointError(
            f"checkpoint {path} is not a checkpoint of checked-rl (expected a file written by "
            f"save_checkpoint; reading it as one failed with {type(error).__name__})"
        ) from None
    validate_checkpoint(checkpoint, str(path))
    return checkpoint


def validate_checkpoint(checkpoint: Any, source: str) -> None:
    """Raise `CheckpointError` unless `checkpoint` has this package's layout throughout."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint)
        raise CheckpointError(
            f"checkpoint {source} has format {found!r}, expected {CHECKPOINT_FORMAT}"
        )
    missing = sorted(REQUIRED_KEYS - set(checkpoint))
    if missing:
        raise CheckpointError(f"checkpoint {source} lacks keys {missing}")
    try:
        _validate_fields(checkpoint)
    except (ValueError, TypeError, KeyError) as error:
        detail = " ".join(str(error).split())
        raise CheckpointError(f"checkpoint {source} is not valid: {detail}") from None


def _validate_fields(checkpoint: dict[str, Any]) -> None:
    """The checks of `validate_checkpoint` past the format and the keys."""
    if not isinstance(checkpoint["config"], dict):
        raise TypeError("config must be a dict")
    config = PPOConfig.from_dict(checkpoint["config"])
    run = checkpoint["run"]
    if not isinstance(run, dict) or not all(
        isinstance(run.get(key), str) and run.get(key) for key in ("kind", "env_id", "device")
    ):
        raise TypeError(f"run must name its kind, env_id and device as strings, got {run!r}")
    for key in ("update", "env_steps"):
        value = checkpoint[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TypeError(f"{key} must be a non-negative integer, got {value!r}")
    network = checkpoint["network"]
    if isinstance(network, dict) and network.get("hidden") != config.hidden:
        raise ValueError(
            f"network hidden={network.get('hidden')!r} differs from its config's "
            f"hidden={config.hidden}"
        )
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = ActorCritic.from_description(network).state_dict()
    model = checkpoint["model"]
    if not isinstance(model, dict) or set(model) != set(expected):
        found = sorted(model) if isinstance(model, dict) else type(model).__name__
        raise ValueError(f"model parameters {found}, expected {sorted(expected)}")
    for name, tensor in expected.items():
        value = model[name]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
            raise ValueError(
                f"model parameter {name} has shape {found}, its network {network} needs "
                f"{tuple(tensor.shape)}"
            )
        if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
            raise ValueError(f"model parameter {name} is not a finite floating-point tensor")
    rng = checkpoint["rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise TypeError("rng must be a 1-dimensional uint8 tensor (a generator state)")
    if not isinstance(checkpoint["optimizer"], dict):
        raise TypeError("optimizer must be a state dict")
    if not (checkpoint["session"] is None or isinstance(checkpoint["session"], dict)):
        raise TypeError("session must be a state dict or None")
    TrainLog.from_dict(checkpoint["log"])
    shape = tuple(network["observation_shape"])  # checked by ActorCritic.from_description
    validate_normalization(checkpoint.get("normalization"), config, shape, config.num_envs)

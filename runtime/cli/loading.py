"""What `train`, `eval` and `export` share: session kinds, devices, sessions, checkpoints.

Each helper turns input a user can get wrong into a `CLIError` (one line, exit code 2).
"""

import math
from typing import Any

import torch

from checked_rl.runtime.cli import SESSION_ERRORS, CLIError, one_line
from checked_rl.runtime.cli.env_ids import EnvIdError, checkpoint_env_id, resolve_env_id
from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint
from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.limits import check_sizes
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.sessions import KINDS, CheckedSession, make_session

__all__ = [
    "LoadedPolicy",
    "action_outputs",
    "check_memory",
    "device_option",
    "env_id_option",
    "load_policy",
    "open_session",
    "session_kind",
]


class LoadedPolicy:
    """A checkpoint's config, run, model and the environment id to use it on."""

    def __init__(self, path: str, saved: dict[str, Any], env_id: str) -> None:
        self.path = path
        self.saved = saved
        self.config = PPOConfig.from_dict(saved["config"])
        self.run: dict[str, str] = saved["run"]
        self.env_id = env_id
        self.model = ActorCritic.from_description(saved["network"])
        self.model.load_state_dict(saved["model"])  # validated by load_checkpoint
        self.model.eval()


def load_policy(path: str, env_id: str | None, trust_env: bool) -> LoadedPolicy:
    """Load and validate the checkpoint `path`; resolve its environment id (see `env_ids`)."""
    try:
        saved = load_checkpoint(path)
        resolved = checkpoint_env_id(saved["run"]["env_id"], env_id, trust_env,
                                     f"checkpoint {path}")
    except (CheckpointError, EnvIdError) as error:
        raise CLIError(str(error)) from None
    return LoadedPolicy(path, saved, resolved)


def env_id_option(value: str) -> str:
    """`--env-id` resolved (`env_ids.resolve_env_id`), or a one-line error."""
    try:
        return resolve_env_id(value)
    except EnvIdError as error:
        raise CLIError(str(error)) from None


def open_session(
    purpose: str, kind: str, env_id: str, *, num_envs: int, device: torch.device
) -> CheckedSession:
    """`make_session(kind, env_id, ...)`, or a one-line error naming the environment id."""
    try:
        return make_session(kind, env_id, num_envs=num_envs, device=device)
    except SESSION_ERRORS as error:
        raise CLIError(
            f"cannot {purpose} {env_id!r} with a {kind!r} session: {one_line(error)}"
        ) from None


def action_outputs(session: CheckedSession) -> int:
    """The actor's outputs for the session's actions: `n_actions`, or the entries of the box."""
    box = session.action_box
    return session.n_actions if box is None else math.prod(box.shape)


def check_memory(kind: str, probe: CheckedSession, **sizes: Any) -> None:
    """`limits.check_sizes` for the spaces of `probe`, as a one-line error."""
    try:
        check_sizes(kind=kind, observation_shape=tuple(probe.observation_shape),
                    n_actions=action_outputs(probe), **sizes)
    except ValueError as error:
        raise CLIError(str(error)) from None


def session_kind(name: str) -> str:
    """`name` if it is a session kind, else a one-line error."""
    if name not in KINDS:
        raise CLIError(f"--kind must be one of {', '.join(KINDS)}, got {name!r}")
    return name


def device_option(name: str) -> torch.device:
    """`name` as a torch device that exists here, else a one-line error."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device must be cpu or cuda, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise CLIError(f"--device must be cpu or cuda, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: no CUDA GPU is available on this machine")
    return device

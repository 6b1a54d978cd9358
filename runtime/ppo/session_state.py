"""Capture and restore the state of a training session, so that a resumed run continues exactly.

The checked-session protocol has no state accessors, so this module reads the state of the two
session kinds whose state lives in this process and is plain data:

- `torch` sessions over an environment with `get_state` / `set_state` (physics and step
  counts) and a torch generator for its reset noise (`runtime.envs.cartpole.CartPole`);
- `spec` sessions: one NumPy generator and one dataclass state per environment.

Gymnasium sessions (in-process environments hold arbitrary Python objects; subprocess ones
live elsewhere) have no captured state: `session_state` returns None and a resumed run resets
them with fresh seeds instead. The result holds only tensors, numbers, strings, lists and dicts,
as `torch.load(weights_only=True)` requires.
"""

import dataclasses
from typing import Any

import numpy as np
import torch

from checked_rl.runtime.sessions.base import CheckedSession
from checked_rl.runtime.sessions.batched_envs import TorchSession
from checked_rl.runtime.sessions.spec_envs import SpecSession

__all__ = ["restore_session_state", "session_state"]


def session_state(session: CheckedSession) -> dict[str, Any] | None:
    """The state of `session` as plain data, or None for a kind whose state is not captured."""
    if isinstance(session, TorchSession) and _has_torch_state(session.env):
        env = session.env
        physics, steps = env.get_state()
        return {
            "kind": "torch",
            "step_count": session.step_count,
            "physics": physics.cpu(),
            "steps": steps.cpu(),
            "generator": env._generator.get_state().cpu(),
            "rngs": [rng.bit_generator.state for rng in env._rngs],
        }
    if isinstance(session, SpecSession) and all(
        dataclasses.is_dataclass(state) for state in session._states
    ):
        return {
            "kind": "spec",
            "step_count": session.step_count,
            "rngs": [rng.bit_generator.state for rng in session._rngs],
            "states": [dataclasses.asdict(state) for state in session._states],
            "observations": [torch.from_numpy(np.array(o)) for o in session._observations],
        }
    return None


def restore_session_state(session: CheckedSession, state: dict[str, Any]) -> None:
    """Put `session` (a fresh session of the same kind and size) into the captured `state`."""
    kind = "torch" if isinstance(session, TorchSession) else (
        "spec" if isinstance(session, SpecSession) else type(session).__name__
    )
    if state.get("kind") != kind:
        raise ValueError(
            f"restore_session_state: the checkpoint holds a {state.get('kind')!r} session state, "
            f"the session to restore is {kind!r}"
        )
    session.reset(seed=0)  # makes the session usable; everything it drew is overwritten below
    if isinstance(session, TorchSession):
        env = session.env
        _check_count("physics", len(state["physics"]), session.num_envs)
        env.set_state(state["physics"].to(env.device), state["steps"].to(env.device))
        env._generator.set_state(state["generator"].to(env._generator.get_state().device))
        for rng, saved in zip(env._rngs, state["rngs"], strict=True):
            rng.bit_generator.state = saved
    else:
        _check_count("states", len(state["states"]), session.num_envs)
        template = type(session._states[0])
        session._states = [template(**saved) for saved in state["states"]]
        for rng, saved in zip(session._rngs, state["rngs"], strict=True):
            rng.bit_generator.state = saved
        session._observations = [o.numpy() for o in state["observations"]]
    session._observation = session._observe()
    session._step_count = int(state["step_count"])


def _has_torch_state(env: object) -> bool:
    """Whether a batched environment exposes everything `session_state` captures."""
    return all(hasattr(env, name) for name in ("get_state", "set_state", "_generator", "_rngs"))


def _check_count(what: str, found: int, expected: int) -> None:
    """Refuse a state captured from a session of another size."""
    if found != expected:
        raise ValueError(
            f"restore_session_state: the checkpoint's {what} are for {found} environments, "
            f"the session has {expected}"
        )

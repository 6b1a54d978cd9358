"""Checked sessions over spec, torch and Gymnasium environments, and the `make_session` factory.

| kind                     | environments                                   | device     | state |
| ------------------------ | ---------------------------------------------- | ---------- | ----- |
| `spec`                   | N spec environments in NumPy (the reference)   | CPU        | yes   |
| `torch`                  | one batched torch environment                  | CPU / CUDA | yes   |
| `gymnasium`              | N Gymnasium environments in this process       | CPU        | no    |
| `gymnasium-subprocess`   | N Gymnasium environments in server processes   | CPU        | no    |
| `gymnasium-vector`       | one Gymnasium `VectorEnv`, any autoreset mode  | CPU        | no    |

The environment ids of the `spec` and `torch` kinds, `SPEC_ENVIRONMENTS` and
`TORCH_ENVIRONMENTS`, live in the torch-free `runtime.env_registry` (so that `import checked_rl`
can register them with Gymnasium without torch) and are re-exported here.

Every kind takes discrete actions (`[N]` integers) and continuous ones (`[N, *A]` of the action
box's dtype, checked, clipped into the box for the environments, recorded as given:
`CheckedSession.step_checked`, `spec.actions`).

"state": whether `state_dict()` / `load_state_dict()` capture and restore the session exactly;
where they cannot, both raise `StateNotCapturedError` naming the kind (a `torch` session over a
batched environment without `state_dict` / `load_state_dict` cannot either). The columns come
from the session classes' attributes (`kind`, `cpu_only`, `uncaptured`), from which
`SESSION_CLASSES`, `KINDS`, `CPU_ONLY_KINDS` and `GYMNASIUM_KINDS` are derived.
"""

import dataclasses
import importlib
from typing import Any

import torch

from checked_rl.runtime.env_names import EnvironmentMakeError
from checked_rl.runtime.env_registry import SPEC_ENVIRONMENTS, TORCH_ENVIRONMENTS
from checked_rl.runtime.sessions.base import (
    CheckedSession,
    EnvironmentCloseError,
    EnvironmentStepError,
    SessionStateError,
    StateNotCapturedError,
)
from checked_rl.runtime.sessions.batched_envs import TorchSession
from checked_rl.runtime.sessions.gymnasium_envs import GymnasiumSession
from checked_rl.runtime.sessions.spec_envs import SpecSession
from checked_rl.runtime.sessions.subprocess_envs import SubprocessSession
from checked_rl.runtime.sessions.vector_envs import VectorSession

__all__ = [
    "CPU_ONLY_KINDS",
    "GYMNASIUM_KINDS",
    "KINDS",
    "SESSION_CLASSES",
    "SPEC_ENVIRONMENTS",
    "TORCH_ENVIRONMENTS",
    "CheckedSession",
    "EnvironmentCloseError",
    "EnvironmentMakeError",
    "EnvironmentStepError",
    "GymnasiumSession",
    "SessionStateError",
    "SpecSession",
    "StateNotCapturedError",
    "SubprocessSession",
    "TorchSession",
    "VectorSession",
    "make_session",
]

SESSION_CLASSES: dict[str, type[CheckedSession]] = {
    session.kind: session
    for session in (SpecSession, TorchSession, GymnasiumSession, SubprocessSession, VectorSession)
}
"""The session class of each kind (its `kind` attribute names it)."""

KINDS = tuple(SESSION_CLASSES)
"""The session kinds `make_session` builds: the one list of them."""

CPU_ONLY_KINDS = tuple(kind for kind, session in SESSION_CLASSES.items() if session.cpu_only)
"""The kinds whose sessions live on the CPU only (`cpu_only`): `make_session` refuses a device."""

GYMNASIUM_KINDS = tuple(
    kind for kind, session in SESSION_CLASSES.items() if session.takes_gymnasium_ids
)
"""The kinds that make their environments from any registered Gymnasium id
(`takes_gymnasium_ids`)."""


def make_session(
    kind: str,
    env_id: str = "CartPole-v1",
    *,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    dtype: torch.dtype | None = None,
    make_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> CheckedSession:
    """A checked session of `kind` over `num_envs` copies of `env_id`.

    Args:
        kind: one of `KINDS`.
        env_id: for `spec` and `torch`, a key of `SPEC_ENVIRONMENTS` / `TORCH_ENVIRONMENTS`;
            for the Gymnasium kinds (`GYMNASIUM_KINDS`), any registered Gymnasium id.
        num_envs: the number N of environments.
        device: where the session's tensors live; sessions of `CPU_ONLY_KINDS` (`spec`,
            `gymnasium`) stay on the CPU.
        seed: when given, the session is reset with it before it is returned (a reset that
            raises closes the session: no server outlives the error).
        dtype: `torch`: the environment's floating dtype; the other kinds: the dtype of
            rewards (float32 by default). Observations keep the environment's dtype.
        make_kwargs: `spec` and `torch`: fields of the spec environment's `Params` (e.g.
            `max_episode_steps` for CartPole), and for `torch` also keyword arguments of the
            environment's constructor (e.g. `reset_noise="gymnasium"`); Gymnasium kinds:
            keyword arguments of `gymnasium.make`.
        options: passed on to the session's constructor (e.g. `contract=`, or `num_servers=`,
            `timeout=` and `transport=` for `gymnasium-subprocess`; `vectorization_mode=` and
            `autoreset_mode=` for `gymnasium-vector` (see `VectorSession.from_id`), or
            `vector_env=` an existing `gymnasium.vector.VectorEnv`, then `env_id` is unused and
            `num_envs` must be 1 or its `num_envs`).

    Raises:
        ValueError: unknown `kind`, a device other than the CPU for a kind of `CPU_ONLY_KINDS`,
            or an `env_id` the kind does not provide; the message lists the valid ones.
    """
    make_kwargs = dict(make_kwargs or {})
    if kind not in KINDS:
        raise ValueError(f"make_session: kind must be one of {list(KINDS)}, got {kind!r}")
    if kind in CPU_ONLY_KINDS and str(device).split(":")[0] != "cpu":
        raise ValueError(f"make_session: {kind!r} sessions run on the CPU, got device={device}")
    if dtype is not None and kind != "torch":
        options.setdefault("reward_dtype", dtype)
    if kind == "spec":
        module = importlib.import_module(_registered(SPEC_ENVIRONMENTS, kind, env_id))
        params, rest = _split_params(module.Params, make_kwargs)
        if rest:
            raise ValueError(
                f"make_session: unknown make_kwargs {sorted(rest)} for the spec {env_id}; "
                f"valid: {sorted(f.name for f in dataclasses.fields(module.Params))}"
            )
        env = module.environment(params)
        session: CheckedSession = SpecSession(env, num_envs, **options)
    elif kind == "torch":
        module_name, class_name = _registered(TORCH_ENVIRONMENTS, kind, env_id).split(":")
        env_class = getattr(importlib.import_module(module_name), class_name)
        spec_module = importlib.import_module(SPEC_ENVIRONMENTS[env_id])
        params, rest = _split_params(spec_module.Params, make_kwargs)
        if dtype is not None:
            rest.setdefault("dtype", dtype)
        env = env_class(num_envs, params, device=device, **rest)
        session = TorchSession(env, **options)
    elif kind == "gymnasium":
        session = GymnasiumSession.from_id(env_id, num_envs, make_kwargs=make_kwargs, **options)
    elif kind == "gymnasium-vector" and "vector_env" in options:
        vector_env = options.pop("vector_env")
        if num_envs not in (1, getattr(vector_env, "num_envs", num_envs)):
            raise ValueError(
                f"make_session: num_envs={num_envs} but the vector_env has "
                f"{vector_env.num_envs} copies"
            )
        session = VectorSession(vector_env, **options)
    elif kind == "gymnasium-vector":
        session = VectorSession.from_id(env_id, num_envs, make_kwargs=make_kwargs, **options)
    else:
        session = SubprocessSession(
            env_id, num_envs=num_envs, make_kwargs=make_kwargs, device=device, **options
        )
    if seed is not None:
        try:
            session.reset(seed=seed)
        except BaseException as error:
            try:
                session.close()
            except EnvironmentCloseError as failure:
                error.add_note(str(failure))
            raise
    return session


def _registered(registry: dict[str, str], kind: str, env_id: str) -> str:
    """What `registry` holds for `env_id`, or a ValueError listing the valid ids."""
    if env_id not in registry:
        raise ValueError(
            f"make_session: {kind!r} sessions provide the environments {sorted(registry)}, "
            f"got {env_id!r}"
        )
    return registry[env_id]


def _split_params(params_class: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`params_class` built from the keys of `kwargs` that are its fields, and the rest."""
    names = {f.name for f in dataclasses.fields(params_class)}
    params = params_class(**{key: value for key, value in kwargs.items() if key in names})
    return params, {key: value for key, value in kwargs.items() if key not in names}

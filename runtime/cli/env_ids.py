"""Environment ids on the command line, resolved the same way by every subcommand.

`train`, `eval`, `check-env` and `export` take:

- a registered Gymnasium id (`CartPole-v1`), or an id of the `torch` / `spec` sessions;
- `module:EnvId`: the module is imported (it registers `EnvId` with Gymnasium), as
  `gymnasium.make` does;
- `module:Class`: the module is imported and its `gymnasium.Env` subclass `Class` is
  registered with Gymnasium under the id `Class` (in this process: a `gymnasium-subprocess`
  session needs the module to register an id itself), unless the module registered `Class`
  with versions (`Class-v0`), which Gymnasium then makes (the latest version).

The current directory is importable, so `my_envs:Corridor-v0` finds `./my_envs.py`. A module
that does not import, or a name it does not provide, is one line (`EnvIdError`). A checkpoint
never imports a module named inside it on its own: `checkpoint_env_id` asks for `--env-id` or
`--trust-checkpoint-env` first.
"""

import importlib
import os
import sys

import gymnasium

__all__ = ["EnvIdError", "checkpoint_env_id", "import_current_directory", "resolve_env_id"]


class EnvIdError(ValueError):
    """An environment id that cannot be resolved; the message is one line."""


def import_current_directory() -> None:
    """Make modules of the current directory importable (as `python -m` does)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def resolve_env_id(env_id: str) -> str:
    """Import the module of a `module:Name` id and register `Name` if it is an Env class.

    Returns `env_id` unchanged (ids without a module are left to the session kind).
    """
    if not env_id or not env_id.strip():
        raise EnvIdError("--env-id must name an environment, got ''")
    import_current_directory()
    if ":" not in env_id:
        return env_id
    module_name, _, name = env_id.partition(":")
    if not module_name or not name or ":" in name:
        raise EnvIdError(f"environment id {env_id!r}: expected ID or module:Name")
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # any failure of the user's module, SystemExit included
        lines = str(error).strip().splitlines() or [""]
        raise EnvIdError(
            f"environment id {env_id!r}: module {module_name!r} failed to import: "
            f"{type(error).__name__}: {lines[0]}"
        ) from None
    if name in gymnasium.registry or any(
        spec.namespace is None and spec.name == name for spec in gymnasium.registry.values()
    ):  # registered, or registered with versions (Gymnasium then makes the latest one)
        return env_id
    found = getattr(module, name, None)
    if isinstance(found, type) and issubclass(found, gymnasium.Env):
        gymnasium.register(id=name, entry_point=f"{module_name}:{name}")
        return env_id
    raise EnvIdError(
        f"environment id {env_id!r}: module {module_name!r} neither registers the Gymnasium "
        f"id {name!r} nor defines a gymnasium.Env subclass {name!r}"
    )


def checkpoint_env_id(saved_env_id: str, given: str | None, trusted: bool, source: str) -> str:
    """The environment id to use for a checkpoint whose run names `saved_env_id`.

    `given` (the user's `--env-id`) wins. Otherwise an id naming a module is only used when
    `trusted` (`--trust-checkpoint-env`): loading a checkpoint never imports code on its own.
    """
    if given is not None:
        return resolve_env_id(given)
    if ":" in saved_env_id and not trusted:
        raise EnvIdError(
            f"{source}: its environment {saved_env_id!r} comes from module "
            f"{saved_env_id.partition(':')[0]!r}, which is not imported on a checkpoint's "
            f"word: pass --env-id {saved_env_id} (or --trust-checkpoint-env)"
        )
    return resolve_env_id(saved_env_id)

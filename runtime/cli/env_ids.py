"""Environment ids on the command line, resolved the same way by every subcommand.

`train`, `eval`, `check-env` and `export` take what `runtime.env_names.resolve_env_id` takes
(a Gymnasium id or an id of the `torch` / `spec` sessions, `module:EnvId`, `module:Class`).
The current directory is importable, so `my_envs:Corridor-v0` finds `./my_envs.py`. A module
that does not import, or a name it does not provide, is one line (`EnvIdError`). A checkpoint
never imports a module named inside it on its own: `checkpoint_env_id` asks for `--env-id` or
`--trust-checkpoint-env` first.
"""

import os
import sys

from checked_rl.runtime import env_names

__all__ = ["EnvIdError", "checkpoint_env_id", "import_current_directory", "resolve_env_id"]


class EnvIdError(ValueError):
    """An environment id that cannot be resolved; the message is one line."""


def import_current_directory() -> None:
    """Make modules of the current directory importable (as `python -m` does)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def resolve_env_id(env_id: str) -> str:
    """`runtime.env_names.resolve_env_id` for the command line: the current directory is
    importable, and whatever is wrong is one line (`EnvIdError`).

    Returns `env_id` unchanged (ids without a module are left to the session kind).
    """
    if not env_id or not env_id.strip():
        raise EnvIdError("--env-id must name an environment, got ''")
    import_current_directory()
    try:
        return env_names.resolve_env_id(env_id)
    except (ImportError, ValueError) as error:
        raise EnvIdError(f"environment id {error}") from None


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

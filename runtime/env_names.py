"""Environment names as users write them (a Gymnasium id, `module:EnvId` or `module:Class`), and
what making one may raise.

`resolve_env_id` makes any of them something `gymnasium.make` accepts, so that everything that
makes environments from ids (the Gymnasium session kinds, `train`, `eval`, `check-env`,
`export`, the pytest plugin) accepts a class as readily as an id, and the name a user wrote is
the name that is kept (in a run's config, in a checkpoint):

- `CartPole-v1`, `checked_rl/CartPole-v1`: ids, returned unchanged (the session kind decides);
- `module:Name-v0`: Gymnasium's own form (importing `module` registers `Name-v0`), unchanged;
  `module:Name` where the module registers `Name` with versions makes the latest version;
- `module:Class`, where `Class` is a `gymnasium.Env` subclass of `module`: `Class` is registered
  (in this process) with `module:Class` as its entry point, and the name is returned unchanged:
  `gymnasium.make("module:Class")` imports the module and makes it. A bridge server is another
  process: there the module must register an id itself (`registered_from_class` tells the two
  apart).

`make_environment` runs a user's constructor, so that whatever it raises (`sys.exit` included)
becomes one `EnvironmentMakeError` naming the id. This module imports no torch.

Modules are imported from the Python path (callers that take names from a command line put the
current directory on it first).
"""

import importlib
from collections.abc import Callable
from typing import TypeVar

import gymnasium

__all__ = [
    "EnvironmentMakeError",
    "make_environment",
    "registered_from_class",
    "resolve_env_id",
]

T = TypeVar("T")


def _registered(name: str) -> bool:
    """Whether `name` is a registered id, or the name of ids registered with versions."""
    return name in gymnasium.registry or any(
        spec.namespace is None and spec.name == name for spec in gymnasium.registry.values()
    )


def resolve_env_id(name: str) -> str:
    """`name`, after importing its module and registering its class (see the module docstring).

    Raises:
        ImportError: the module of `module:...` does not import (whatever the module raised
            is the cause).
        ValueError: a malformed name, or `module:X` where `X` is neither an id the module
            registers nor a `gymnasium.Env` subclass in it; the message names both forms.
    """
    if ":" not in name:
        return name
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise ValueError(f"{name!r}: expected ID or module:Name")
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # any failure of the user's module, SystemExit included
        lines = str(error).strip().splitlines() or [""]
        raise ImportError(
            f"{name!r}: module {module_name!r} failed to import: {type(error).__name__}: "
            f"{lines[0]}"
        ) from error
    if _registered(attribute):
        return name
    target = getattr(module, attribute, None)
    if not (isinstance(target, type) and issubclass(target, gymnasium.Env)):
        raise ValueError(
            f"{name!r}: module {module_name!r} neither registers the Gymnasium id {attribute!r} "
            f"nor defines a gymnasium.Env subclass {attribute!r}"
        )
    gymnasium.register(id=attribute, entry_point=name)
    return name


def registered_from_class(name: str) -> bool:
    """Whether `name` is a `module:Class` that `resolve_env_id` registered in this process."""
    attribute = name.partition(":")[2]
    spec = gymnasium.registry.get(attribute) if ":" in name else None
    return spec is not None and spec.entry_point == name


class EnvironmentMakeError(RuntimeError):
    """Making an environment raised (anything but an unknown id, a failed import, a
    `ValueError` or Ctrl-C, which pass unchanged); the message names the id and what it raised.

    The original exception, `SystemExit` included, is chained as `__cause__`.
    """


def make_environment(env_id: str, make: Callable[[], T]) -> T:
    """`make()`, with what the environment raised while being made as `EnvironmentMakeError`.

    An environment that calls `sys.exit` in its constructor would otherwise end the caller
    (`check-env` reporting nothing, and exit code 0).
    """
    try:
        return make()
    except (KeyboardInterrupt, gymnasium.error.Error, ImportError, ValueError):
        raise
    except BaseException as error:  # SystemExit and any other failure of the user's code
        lines = str(error).strip().splitlines() or [""]
        raise EnvironmentMakeError(
            f"{env_id}: making the environment raised {type(error).__name__}: {lines[0]}"
        ) from error

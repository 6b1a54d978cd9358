"""Environment names as users write them: a Gymnasium id, `module:EnvId` or `module:Class`.

`resolve_env_id` turns any of them into a registered Gymnasium id, so that everything that makes
environments from ids (the Gymnasium session kinds, `check-env`, the pytest plugin) accepts a
class as readily as an id:

- `CartPole-v1`, `checked_rl/CartPole-v1`: registered ids, returned unchanged;
- `module:Name-v0`: Gymnasium's own form (importing `module` registers `Name-v0`), unchanged;
- `module:Class`, where `Class` is a `gymnasium.Env` subclass of `module`: registered once (in
  this process) as `module.Class-v0` with `module:Class` as its entry point, which is returned.

Modules are imported from the Python path (callers that take names from a command line put the
current directory on it first).
"""

import importlib

import gymnasium

__all__ = ["resolve_env_id"]


def resolve_env_id(name: str) -> str:
    """The registered Gymnasium id for `name` (see the module docstring).

    Raises:
        ImportError: the module of `module:...` does not import.
        ValueError: `module:X` where `X` is neither an id the module registers nor a
            `gymnasium.Env` subclass in it; the message names both forms.
    """
    if ":" not in name:
        return name
    module_name, _, attribute = name.partition(":")
    module = importlib.import_module(module_name)
    if attribute in gymnasium.registry:
        return name
    target = getattr(module, attribute, None)
    if not (isinstance(target, type) and issubclass(target, gymnasium.Env)):
        raise ValueError(
            f"{name!r}: {module_name} neither registers the Gymnasium id {attribute!r} nor "
            f"defines a gymnasium.Env subclass of that name"
        )
    env_id = f"{module_name}.{attribute}-v0"
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point=f"{module_name}:{attribute}")
    return env_id

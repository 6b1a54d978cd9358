"""The registry of environment ids, and their registration with Gymnasium: imports no torch.

`SPEC_ENVIRONMENTS` and `TORCH_ENVIRONMENTS` say which environments the `spec` and `torch`
session kinds provide (`runtime.sessions` re-exports both). `register_vector_envs` registers
every id of `TORCH_ENVIRONMENTS` with Gymnasium as `checked_rl/<Id>`, a vector environment made
by `runtime.batched_vector_env.make_vector_env`; `import checked_rl` calls it. This module
imports only Gymnasium, so that `import checked_rl` (and a bridge server) stays quick: the
runtime and torch load when an environment is made.
"""

import gymnasium

__all__ = [
    "NAMESPACE",
    "SPEC_ENVIRONMENTS",
    "TORCH_ENVIRONMENTS",
    "default_kind",
    "register_vector_envs",
]

SPEC_ENVIRONMENTS = {
    "Acrobot-v1": "checked_rl.spec.envs.acrobot",
    "CartPole-v1": "checked_rl.spec.envs.cartpole",
    "GridWorld-v0": "checked_rl.spec.envs.gridworld",
    "MountainCar-v0": "checked_rl.spec.envs.mountain_car",
    "MountainCarContinuous-v0": "checked_rl.spec.envs.mountain_car_continuous",
    "Pendulum-v1": "checked_rl.spec.envs.pendulum",
}
"""Environment ids of the spec sessions: modules providing `Params` and `environment(params)`."""

TORCH_ENVIRONMENTS = {
    "Acrobot-v1": "checked_rl.runtime.envs.acrobot:Acrobot",
    "CartPole-v1": "checked_rl.runtime.envs.cartpole:CartPole",
    "GridWorld-v0": "checked_rl.runtime.envs.gridworld:GridWorld",
    "MountainCar-v0": "checked_rl.runtime.envs.mountain_car:MountainCar",
    "MountainCarContinuous-v0": "checked_rl.runtime.envs.mountain_car:MountainCarContinuous",
    "Pendulum-v1": "checked_rl.runtime.envs.pendulum:Pendulum",
}
"""Environment ids of the torch sessions: `module:class` of the batched environment, whose
constructor takes `(num_envs, params, *, device, dtype, ...)` with the spec twin's `Params`."""

def default_kind(env_id: str) -> str:
    """The session kind `train` uses for `env_id` unless told: `torch` where a batched runtime
    twin exists (an id of `TORCH_ENVIRONMENTS`), `gymnasium` for every other id.

    >>> default_kind("Pendulum-v1"), default_kind("LunarLander-v3")
    ('torch', 'gymnasium')
    """
    return "torch" if env_id in TORCH_ENVIRONMENTS else "gymnasium"


NAMESPACE = "checked_rl"
"""The Gymnasium namespace of the registered vector environments: `checked_rl/<Id>`."""


def register_vector_envs() -> list[str]:
    """Register `checked_rl/<Id>` for every id of `TORCH_ENVIRONMENTS` (once); return them."""
    registered = []
    for env_id in TORCH_ENVIRONMENTS:
        full_id = f"{NAMESPACE}/{env_id}"
        if full_id not in gymnasium.registry:
            gymnasium.register(
                id=full_id,
                vector_entry_point="checked_rl.runtime.batched_vector_env:make_vector_env",
                kwargs={"env_id": env_id},
            )
        registered.append(full_id)
    return registered

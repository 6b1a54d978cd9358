"""`resolve_env_id`: ids pass through, `module:Class` is registered once, the rest is refused."""

import gymnasium as gym
import pytest

from checked_rl.runtime.env_names import resolve_env_id


def test_ids_and_module_ids_pass_through() -> None:
    assert resolve_env_id("CartPole-v1") == "CartPole-v1"
    assert resolve_env_id("tests.faulty_envs:NanAtStep-v0") == "tests.faulty_envs:NanAtStep-v0"


def test_a_class_is_registered_once_under_its_module_and_name() -> None:
    name = "gymnasium.envs.classic_control.cartpole:CartPoleEnv"
    env_id = resolve_env_id(name)
    assert env_id == "gymnasium.envs.classic_control.cartpole.CartPoleEnv-v0"
    assert resolve_env_id(name) == env_id
    env = gym.make(env_id)
    assert type(env.unwrapped).__name__ == "CartPoleEnv"
    env.close()


@pytest.mark.parametrize(
    ("name", "error", "fragment"),
    [
        ("numpy:ndarray", ValueError, "neither registers the Gymnasium id 'ndarray' nor defines"),
        ("numpy:no_such_thing", ValueError, "gymnasium.Env subclass of that name"),
        ("no_such_module_here:Env", ImportError, "no_such_module_here"),
    ],
)
def test_anything_else_is_refused_in_one_line(name: str, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        resolve_env_id(name)

"""`resolve_env_id`: ids pass through, `module:Class` is registered and kept as written, the rest
is refused."""

import gymnasium as gym
import pytest

from checked_rl.runtime.env_names import registered_from_class, resolve_env_id


def test_ids_and_module_ids_pass_through() -> None:
    assert resolve_env_id("CartPole-v1") == "CartPole-v1"
    assert resolve_env_id("tests.faulty_envs:NanAtStep-v0") == "tests.faulty_envs:NanAtStep-v0"


def test_a_class_is_registered_under_its_name_and_kept_as_written() -> None:
    name = "gymnasium.envs.classic_control.cartpole:CartPoleEnv"
    assert not registered_from_class(name)
    assert resolve_env_id(name) == name
    assert resolve_env_id(name) == name  # a second time: already registered, same answer
    assert registered_from_class(name)
    assert not registered_from_class("tests.faulty_envs:NanAtStep-v0")
    env = gym.make(name)
    assert type(env.unwrapped).__name__ == "CartPoleEnv"
    env.close()


@pytest.mark.parametrize(
    ("name", "error", "fragment"),
    [
        ("numpy:ndarray", ValueError, "neither registers the Gymnasium id 'ndarray' nor defines"),
        ("numpy:no_such_thing", ValueError, "gymnasium.Env subclass 'no_such_thing'"),
        ("no_such_module_here:Env", ImportError, "module 'no_such_module_here' failed to import"),
        ("numpy:a:b", ValueError, "expected ID or module:Name"),
    ],
)
def test_anything_else_is_refused_in_one_line(name: str, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        resolve_env_id(name)

"""spec Acrobot, MountainCar, MountainCarContinuous and Pendulum against the real Gymnasium ones.

Each episode is played in `gymnasium.make(id)` and in the spec side by side from
`np.random.default_rng(seed)` with the same actions: observations (bytes), rewards and flags
must be identical, through truncation (and termination where a steering policy reaches it).
"""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checked_rl.spec.envs import acrobot, mountain_car, pendulum
from checked_rl.spec.envs import mountain_car_continuous as mcc
from checked_rl.spec.envs.base import Box, Discrete

MODULES = {
    "Acrobot-v1": acrobot,
    "MountainCar-v0": mountain_car,
    "MountainCarContinuous-v0": mcc,
    "Pendulum-v1": pendulum,
}
LIMITS = {
    "Acrobot-v1": 500,
    "MountainCar-v0": 200,
    "MountainCarContinuous-v0": 999,
    "Pendulum-v1": 200,
}


def _steer(env_id: str, state, rng: np.random.Generator, dtype) -> object:
    """A policy that mostly pumps energy (so Acrobot and MountainCar terminate), else random."""
    if rng.uniform() < 0.1:
        return _random_action(env_id, rng, dtype)
    if env_id == "Acrobot-v1":
        return 0 if state.dtheta1 > 0 else 2
    if env_id == "MountainCar-v0":
        return 2 if state.velocity >= 0 else 0
    if env_id == "MountainCarContinuous-v0":
        return np.array([1.0 if state.velocity >= 0 else -1.0], dtype)
    return np.array([rng.uniform(-2.5, 2.5)], dtype)


def _random_action(env_id: str, rng: np.random.Generator, dtype) -> object:
    """Uniform discrete actions; continuous ones reach past the box (upstream clips them)."""
    if env_id in ("Acrobot-v1", "MountainCar-v0"):
        return int(rng.integers(3))
    return rng.uniform(-3.0, 3.0, size=(1,)).astype(dtype)


def play_side_by_side(env, spec_env, seed: int, policy, episodes: int = 1) -> list[str]:
    """Play `episodes` episodes in `env` and `spec_env` with the same actions; assert equality.

    Returns how each ended: "terminated" or "truncated". Later episodes start from unseeded
    resets, which both draw from the same generator state.
    """
    gym_obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    state, obs = spec_env.reset(rng)
    assert obs.dtype == gym_obs.dtype and obs.tobytes() == gym_obs.tobytes(), (
        f"reset(seed={seed}): {obs} != {gym_obs}"
    )
    ends = []
    for t in range(1, 5000):
        action = policy(state)
        gym_obs, gym_reward, gym_terminated, gym_truncated, _ = env.step(action)
        out = spec_env.step(state, action)
        where = f"{spec_env.name} seed {seed}, step {t}, action {action!r}"
        assert out.observation.tobytes() == gym_obs.tobytes(), (
            f"{where}: observation {out.observation} != gymnasium {gym_obs}"
        )
        assert out.reward == gym_reward, f"{where}: reward {out.reward!r} != {gym_reward!r}"
        assert (out.terminated, out.truncated) == (gym_terminated, gym_truncated), where
        state = out.state
        if out.terminated or out.truncated:
            ends.append("terminated" if out.terminated else "truncated")
            if len(ends) == episodes:
                return ends
            gym_obs, _ = env.reset()
            state, obs = spec_env.reset(rng)
            assert obs.tobytes() == gym_obs.tobytes(), f"{where}: the next reset differs"
    raise AssertionError(f"seed {seed}: the episodes did not end within 5000 steps")


@pytest.mark.parametrize("env_id", MODULES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_seeds_match_gymnasium_through_truncation(env_id: str, dtype) -> None:
    """12 seeds, random and steering policies: bit-identical, every time limit reached."""
    env, spec_env = gym.make(env_id), MODULES[env_id].environment()
    ends = []
    for seed in range(12):
        actions = np.random.default_rng(10_000 + seed)
        random = play_side_by_side(
            env, spec_env, seed, lambda s, a=actions: _random_action(env_id, a, dtype)
        )
        steered = play_side_by_side(
            env, spec_env, seed, lambda s, a=actions: _steer(env_id, s, a, dtype), episodes=2
        )
        ends += random + steered
    assert "truncated" in ends
    if env_id != "Pendulum-v1":
        assert "terminated" in ends, f"{env_id}: the steering policy never terminated"
    if env_id in ("Pendulum-v1", "Acrobot-v1"):
        assert ends.count("truncated") >= 12


@settings(max_examples=10, deadline=None)
@given(env_id=st.sampled_from(list(MODULES)), seed=st.integers(0, 2**32 - 1))
def test_random_seeds_match_gymnasium(env_id: str, seed: int) -> None:
    env, spec_env = gym.make(env_id), MODULES[env_id].environment()
    actions = np.random.default_rng(seed)
    play_side_by_side(env, spec_env, seed, lambda s: _steer(env_id, s, actions, np.float32))


@pytest.mark.parametrize("noise", [0.0, 0.3])
@pytest.mark.parametrize("dynamics", acrobot.DYNAMICS)
def test_acrobot_variants_match_gymnasium(dynamics: str, noise: float) -> None:
    """The nips dynamics and torque noise, set on upstream's attributes, agree too."""
    params = acrobot.Params(dynamics=dynamics, torque_noise_max=noise)
    env = gym.make("Acrobot-v1")
    env.unwrapped.book_or_nips = dynamics
    env.unwrapped.torque_noise_max = noise
    actions = np.random.default_rng(7)
    for seed in range(3):
        play_side_by_side(
            env, acrobot.environment(params), seed, lambda s: int(actions.integers(3))
        )


def test_constructor_arguments_match_gymnasium() -> None:
    """`goal_velocity` and `g`, upstream's constructor arguments, are Params fields."""
    cases = [
        ("MountainCar-v0", {"goal_velocity": 0.01}, mountain_car.Params(goal_velocity=0.01)),
        ("MountainCarContinuous-v0", {"goal_velocity": 0.01}, mcc.Params(goal_velocity=0.01)),
        ("Pendulum-v1", {"g": 9.81}, pendulum.Params(g=9.81)),
    ]
    for env_id, kwargs, params in cases:
        env = gym.make(env_id, **kwargs)
        actions = np.random.default_rng(3)
        spec_env = MODULES[env_id].environment(params)
        play_side_by_side(
            env, spec_env, 5, lambda s, e=env_id, a=actions: _steer(e, s, a, np.float32), episodes=2
        )


@pytest.mark.parametrize("env_id", MODULES)
def test_spaces_equal_gymnasium(env_id: str) -> None:
    env, spec_env = gym.make(env_id), MODULES[env_id].environment()
    assert spec_env.name == env_id
    assert env.spec.max_episode_steps == LIMITS[env_id] == spec_env.params.max_episode_steps
    space = env.observation_space
    assert spec_env.observation_shape == space.shape
    assert spec_env.observation_dtype == space.dtype
    assert spec_env.observation_low.tobytes() == space.low.tobytes()
    assert spec_env.observation_high.tobytes() == space.high.tobytes()
    if isinstance(env.action_space, gym.spaces.Discrete):
        assert spec_env.action_space == Discrete(int(env.action_space.n))
        assert not spec_env.continuous
    else:
        box = env.action_space
        assert spec_env.action_space == Box(box.shape, box.low, box.high, box.dtype)
        assert spec_env.continuous and spec_env.n_actions is None


def test_invalid_actions_params_and_states_are_named() -> None:
    with pytest.raises(ValueError, match=r"Pendulum-v1: action must be a finite real array"):
        pendulum.environment().step(pendulum.State(0.0, 0.0), np.array([np.nan]))
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        mcc.environment().step(mcc.State(-0.5, 0.0), np.zeros(2))
    with pytest.raises(ValueError, match=r"Acrobot-v1: action must be an integer in \[0, 3\)"):
        acrobot.environment().step(acrobot.State(0.0, 0.0, 0.0, 0.0), 3)
    with pytest.raises(ValueError, match="dynamics must be one of"):
        acrobot.Params(dynamics="other")  # type: ignore[arg-type]
    for module in MODULES.values():
        with pytest.raises(ValueError, match="max_episode_steps must be None or at least 1"):
            module.Params(max_episode_steps=0)
        with pytest.raises(ValueError, match="from_physics: expected"):
            module.State.from_physics(np.zeros(7))


def test_no_time_limit_runs_past_the_limit() -> None:
    params = pendulum.Params(max_episode_steps=None)
    state, _ = pendulum.reset(params, np.random.default_rng(0))
    for _ in range(300):
        out = pendulum.step(params, state, np.zeros(1, np.float32))
        assert not out.truncated
        state = out.state

"""spec CartPole against the real Gymnasium `CartPole-v1`: bit-identical, episode by episode."""

import functools

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from checked_rl.spec.envs import cartpole

VARIANTS = [
    cartpole.Params(),
    cartpole.Params(sutton_barto_reward=True),
    cartpole.Params(integrator="semi-implicit euler"),
    cartpole.Params(integrator="semi-implicit euler", sutton_barto_reward=True),
]
SEEDS = st.integers(0, 2**32 - 1)


@functools.cache
def _gymnasium(params: cartpole.Params) -> gym.Env:
    """One `gym.make("CartPole-v1")` per variant, its integrator set as upstream allows."""
    env = gym.make("CartPole-v1", sutton_barto_reward=params.sutton_barto_reward)
    env.unwrapped.kinematics_integrator = params.integrator
    return env


def _balance(state: cartpole.State) -> int:
    """A linear controller that keeps the pole up for 500 steps from every reset state tried."""
    return int(state.theta + 0.5 * state.theta_dot + 0.01 * state.x + 0.1 * state.x_dot > 0)


def _run_side_by_side(params: cartpole.Params, seed: int, policy) -> tuple[int, bool, bool]:
    """Play one episode in Gymnasium and in the spec with the same actions, asserting equality.

    Returns the episode length and the final (terminated, truncated) flags.
    """
    env = _gymnasium(params)
    gym_obs, _ = env.reset(seed=seed)
    state, obs = cartpole.reset(params, np.random.default_rng(seed))
    assert obs.tobytes() == gym_obs.tobytes(), f"reset(seed={seed}): {obs} != {gym_obs}"
    for t in range(1, 1000):
        action = policy(state)
        gym_obs, gym_reward, gym_terminated, gym_truncated, _ = env.step(action)
        out = cartpole.step(params, state, action)
        where = f"seed {seed}, step {t}, action {action}"
        assert out.observation.dtype == gym_obs.dtype == np.float32
        assert out.observation.tobytes() == gym_obs.tobytes(), (
            f"{where}: observation {out.observation} != gymnasium {gym_obs}"
        )
        assert out.reward == gym_reward, f"{where}: reward {out.reward} != {gym_reward}"
        assert out.terminated == gym_terminated, f"{where}: terminated {out.terminated}"
        assert out.truncated == gym_truncated, f"{where}: truncated {out.truncated}"
        assert out.state.steps == t
        state = out.state
        if out.terminated or out.truncated:
            return t, out.terminated, out.truncated
    raise AssertionError(f"seed {seed}: the episode did not end within 1000 steps")


@pytest.mark.parametrize(
    "params", VARIANTS, ids=lambda p: f"{p.integrator}-sb{p.sutton_barto_reward}"
)
@given(seed=SEEDS, action_seed=SEEDS)
def test_random_episodes_match_gymnasium(
    params: cartpole.Params, seed: int, action_seed: int
) -> None:
    rng = np.random.default_rng(action_seed)
    _, terminated, _ = _run_side_by_side(params, seed, lambda _: int(rng.integers(2)))
    assert terminated, "a random policy drops the pole long before 500 steps"


@pytest.mark.parametrize(
    "params", VARIANTS, ids=lambda p: f"{p.integrator}-sb{p.sutton_barto_reward}"
)
@pytest.mark.parametrize("seed", [0, 12345])
def test_balanced_episode_is_truncated_at_500(params: cartpole.Params, seed: int) -> None:
    length, terminated, truncated = _run_side_by_side(params, seed, _balance)
    assert (length, terminated, truncated) == (500, False, True)


def test_no_time_limit_runs_past_500() -> None:
    params = cartpole.Params(max_episode_steps=None)
    state, _ = cartpole.reset(params, np.random.default_rng(0))
    for _ in range(600):
        out = cartpole.step(params, state, _balance(state))
        assert not out.truncated and not out.terminated
        state = out.state
    assert state.steps == 600


def test_environment_spaces_equal_gymnasium() -> None:
    space = gym.make("CartPole-v1").observation_space
    env = cartpole.environment()
    assert env.observation_shape == space.shape == (4,)
    assert env.observation_dtype == space.dtype == np.float32
    assert env.n_actions == 2
    assert env.observation_low.tobytes() == space.low.tobytes()
    assert env.observation_high.tobytes() == space.high.tobytes()


@given(seed=SEEDS)
def test_environment_record_runs_the_pure_functions(seed: int) -> None:
    env = cartpole.environment()
    state, obs = env.reset(np.random.default_rng(seed))
    assert np.all(np.abs(state.physics()) < 0.05) and state.steps == 0
    assert obs.tobytes() == cartpole.observation(state).tobytes()
    got, want = env.step(state, 1), cartpole.step(env.params, state, 1)
    assert got.state == want.state and got.observation.tobytes() == want.observation.tobytes()


def test_termination_bounds_are_strict() -> None:
    params = cartpole.Params()
    alive = cartpole.State(params.x_threshold, 0.0, -params.theta_threshold, 0.0)
    assert not cartpole.is_terminated(params, alive)
    for dead in (
        cartpole.State(np.nextafter(params.x_threshold, 3.0), 0.0, 0.0, 0.0),
        cartpole.State(0.0, 0.0, np.nextafter(-params.theta_threshold, -1.0), 0.0),
    ):
        assert cartpole.is_terminated(params, dead)


def test_invalid_params_and_states_are_named() -> None:
    with pytest.raises(ValueError, match="integrator must be one of"):
        cartpole.Params(integrator="rk4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_episode_steps"):
        cartpole.Params(max_episode_steps=0)
    with pytest.raises(ValueError, match="expected 4 entries"):
        cartpole.State.from_physics(np.zeros(3))
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 2\)"):
        cartpole.environment().step(cartpole.State(0.0, 0.0, 0.0, 0.0), 2)

"""The environment properties of the kit catch real bugs and pass correct environments.

Each buggy environment below is a small but real `gymnasium.Env` with one defect that
Gymnasium's `check_env` does not look for; the matching property must fail on it (Hypothesis
finds and shrinks an example) and pass on the correct twin.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from hypothesis import settings

from checked_rl.properties.gymnasium_envs import (
    contract_holds_over_random_rollouts,
    different_seeds_differ,
    matches_reference,
    observations_are_not_aliased,
    same_seed_same_episode,
)

FAST = settings(max_examples=15, deadline=None, database=None)


def cartpole() -> gym.Env:
    return gym.make("CartPole-v1")


class PreMoveObservation(CartPoleEnv):
    """A port whose step returns the observation from before the move."""

    def step(self, action):
        before = np.array(self.state, dtype=np.float32)
        _, reward, terminated, truncated, info = super().step(action)
        return before, reward, terminated, truncated, info


class SeededOnce(CartPoleEnv):
    """Seeds its generator at the first reset only (Gymnasium#1084's bug class)."""

    def reset(self, *, seed=None, options=None):
        if getattr(self, "seeded", False):
            seed = None
        self.seeded = True
        return super().reset(seed=seed, options=options)


class IgnoresSeed(CartPoleEnv):
    """Draws its initial state from a generator of its own, whatever the seed."""

    def reset(self, *, seed=None, options=None):
        return super().reset(seed=0, options=options)


class ReusedBuffer(CartPoleEnv):
    """Hands out one observation array that it overwrites at every step."""

    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        if not hasattr(self, "buffer"):
            self.buffer = np.zeros(4, np.float32)
        self.buffer[:] = observation
        return self.buffer, reward, terminated, truncated, info


class NanAfterTenSteps(CartPoleEnv):
    """Returns a NaN velocity from the eleventh step of an episode on."""

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.t += 1
        observation, reward, terminated, truncated, info = super().step(action)
        if self.t > 10:
            observation[1] = np.nan
        return observation, reward, terminated, truncated, info


def limited(env_class):
    """`env_class` with CartPole-v1's time limit, as `gym.make` would wrap it."""
    return lambda: gym.wrappers.TimeLimit(env_class(), 500)


def test_the_reference_match_catches_a_pre_move_observation():
    FAST(matches_reference(cartpole, cartpole))()
    with pytest.raises(AssertionError, match="differs from the reference at record 1"):
        FAST(matches_reference(limited(PreMoveObservation), cartpole))()


def test_the_seeding_property_catches_an_environment_seeded_once():
    FAST(same_seed_same_episode(cartpole))()
    with pytest.raises(AssertionError, match="again gave another episode"):
        FAST(same_seed_same_episode(limited(SeededOnce)))()


def test_distinct_seeds_catch_a_reset_that_ignores_its_seed():
    FAST(different_seeds_differ(cartpole))()
    with pytest.raises(AssertionError, match="reset ignores its seed"):
        FAST(different_seeds_differ(limited(IgnoresSeed)))()


def test_the_aliasing_property_catches_a_reused_buffer():
    FAST(observations_are_not_aliased(cartpole))()
    with pytest.raises(AssertionError, match="was changed later"):
        FAST(observations_are_not_aliased(limited(ReusedBuffer)))()


def test_random_rollouts_catch_a_late_nan():
    FAST(contract_holds_over_random_rollouts(cartpole))()
    with pytest.raises(ValueError, match="is not finite"):
        settings(FAST, max_examples=60)(contract_holds_over_random_rollouts(
            limited(NanAfterTenSteps)
        ))()

"""`follows_autoreset_mode`: Gymnasium's vector environments and ours pass in their declared
mode; one that declares a mode it does not follow, or seeds its copies otherwise, fails."""

import gymnasium as gym
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import settings

import checked_rl  # noqa: F401 - registers checked_rl/<Id>
from checked_rl.properties.vector_autoreset import follows_autoreset_mode

FAST = settings(max_examples=12, deadline=None, database=None)
N = 3


def cartpole() -> gym.Env:
    return gym.make("CartPole-v1")


def sync(mode: AutoresetMode) -> SyncVectorEnv:
    return SyncVectorEnv([cartpole] * N, autoreset_mode=mode)


class ClaimsSameStep(SyncVectorEnv):
    """Resets at the next step but declares same-step autoreset."""

    def __init__(self) -> None:
        super().__init__([cartpole] * N, autoreset_mode=AutoresetMode.NEXT_STEP)
        self.metadata = {**self.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}


class OneSeedForAll(SyncVectorEnv):
    """Seeds every copy with the same seed instead of seed + i."""

    def __init__(self) -> None:
        super().__init__([cartpole] * N, autoreset_mode=AutoresetMode.SAME_STEP)

    def reset(self, *, seed=None, options=None):
        seeds = [seed] * self.num_envs if isinstance(seed, int) else seed
        return super().reset(seed=seeds, options=options)


@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_gymnasium_sync_vector_envs_follow_each_mode(mode: AutoresetMode) -> None:
    FAST(follows_autoreset_mode(lambda: sync(mode), cartpole))()


def test_our_vector_env_equals_singles_bit_for_bit() -> None:
    make = lambda: gym.make_vec(  # noqa: E731
        "checked_rl/CartPole-v1", N, vectorization_mode="vector_entry_point",
        reset_noise="gymnasium",
    )
    FAST(follows_autoreset_mode(make, cartpole))()


def test_a_vector_env_that_does_not_follow_its_declared_mode_fails() -> None:
    with pytest.raises(AssertionError, match=r"SAME_STEP step \d+, copy \d+"):
        FAST(follows_autoreset_mode(ClaimsSameStep, cartpole))()


def test_a_vector_env_that_seeds_every_copy_alike_fails() -> None:
    with pytest.raises(AssertionError, match=r"copy 1 \(seeded"):
        FAST(follows_autoreset_mode(OneSeedForAll, cartpole))()

"""The batched classic-control twins: properties against the spec, buggy twins failing them,
Gymnasium-seeded resets, state round trips and argument errors."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import settings

from checked_rl.properties.classic_control import KITS, step_matches_spec
from checked_rl.runtime.envs.acrobot import Acrobot
from checked_rl.runtime.envs.mountain_car import MountainCar, MountainCarContinuous
from checked_rl.runtime.envs.pendulum import Pendulum
from checked_rl.spec.envs import acrobot

TWINS = {
    "Acrobot-v1": Acrobot,
    "MountainCar-v0": MountainCar,
    "MountainCarContinuous-v0": MountainCarContinuous,
    "Pendulum-v1": Pendulum,
}
FAST = settings(max_examples=30, deadline=None)


def _maker(cls, **kwargs):
    def make(num_envs, params, dtype):
        return cls(num_envs, params, dtype=dtype, seed=0, **kwargs)

    return make


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("env_id", TWINS)
def test_twin_step_matches_spec(env_id: str, dtype: torch.dtype) -> None:
    FAST(step_matches_spec(env_id, _maker(TWINS[env_id]), dtype=dtype))()


def test_acrobot_nips_dynamics_match_spec() -> None:
    params = acrobot.Params(dynamics="nips")
    FAST(step_matches_spec("Acrobot-v1", _maker(Acrobot), params=params))()


class BookOnlyAcrobot(Acrobot):
    """Ignores `params.dynamics`: always the book dynamics."""

    def advance(self, physics, actions):
        saved, self.params = self.params, acrobot.Params()
        try:
            return super().advance(physics, actions)
        finally:
            self.params = saved


class NoClipPendulum(Pendulum):
    """Trusts the policy to stay in the box: never clips the torque."""

    def advance(self, physics, actions):
        saved, self.params = self.params, type(self.params)(max_torque=1e9)
        try:
            return super().advance(physics, actions)
        finally:
            self.params = saved


class CosPositionCar(MountainCar):
    """Uses `cos(position)` for the slope instead of `cos(3 position)`."""

    def advance(self, physics, actions):
        position, velocity = physics
        shifted = torch.stack((position / 3, velocity))
        new, reward, terminated = super().advance(shifted, actions)
        return torch.stack((new[0] + position - position / 3, new[1])), reward, terminated


class NoWallCar(MountainCar):
    """Keeps the velocity at the left wall (drops upstream's stop)."""

    def advance(self, physics, actions):
        position, velocity = physics
        p = self.params
        push = (actions - 1).to(self.dtype) * p.force
        velocity = (velocity + push - torch.cos(3 * position) * p.gravity).clamp(-0.07, 0.07)
        position = (position + velocity).clamp(p.min_position, p.max_position)
        terminated = (position >= p.goal_position) & (velocity >= p.goal_velocity)
        return torch.stack((position, velocity)), torch.full_like(velocity, -1.0), terminated


class UnclippedForceCar(MountainCarContinuous):
    """Applies the force unclipped."""

    def advance(self, physics, actions):
        saved = self.params
        self.params = type(saved)(min_action=-1e9, max_action=1e9)
        try:
            return super().advance(physics, actions)
        finally:
            self.params = saved


class StepCountKeptAcrobot(Acrobot):
    """Resets the physics of done copies but forgets their step counts."""

    def step(self, actions):
        steps = self._steps + 1
        out = super().step(actions)
        self._steps = steps
        return out


@pytest.mark.parametrize(
    ("env_id", "buggy", "params"),
    [
        ("Acrobot-v1", BookOnlyAcrobot, acrobot.Params(dynamics="nips")),
        ("Acrobot-v1", StepCountKeptAcrobot, acrobot.Params(max_episode_steps=2)),
        ("Pendulum-v1", NoClipPendulum, None),
        ("MountainCar-v0", CosPositionCar, None),
        ("MountainCar-v0", NoWallCar, None),
        ("MountainCarContinuous-v0", UnclippedForceCar, None),
    ],
)
def test_buggy_twins_fail_the_property(env_id: str, buggy, params) -> None:
    prop = step_matches_spec(env_id, _maker(buggy), params=params)
    with pytest.raises((AssertionError, ExceptionGroup)) as failure:
        settings(max_examples=200, deadline=None)(prop)()
    if isinstance(failure.value, ExceptionGroup):
        assert failure.value.subgroup(AssertionError) is not None


@pytest.mark.parametrize("env_id", TWINS)
def test_gymnasium_resets_reproduce_gymnasium_seeds(env_id: str) -> None:
    """Copy i reset with seed + i starts exactly where `gym.make(id).reset(seed=seed + i)` does,
    and after an auto-reset where Gymnasium's next reset does."""
    cls, n, seed = TWINS[env_id], 3, 11
    env = cls(n, dtype=torch.float64, reset_noise="gymnasium", seed=seed)
    gyms = [gym.make(env_id) for _ in range(n)]
    for i, g in enumerate(gyms):
        obs, _ = g.reset(seed=seed + i)
        np.testing.assert_allclose(env.observe()[i].numpy(), obs, rtol=0, atol=1e-7)
    limit = env.params.max_episode_steps
    zero = torch.zeros((n, 1)) if env.action_shape else torch.ones(n, dtype=torch.int64)
    for _ in range(limit - 1):
        env.step(zero)
    out = env.step(zero)
    assert bool(out.truncated.all()) and env.get_state()[1].tolist() == [0] * n
    physics, _ = env.get_state()
    for i, g in enumerate(gyms):
        g.reset(seed=seed + i)
        g.reset()  # the second episode's start
        want = np.asarray(g.unwrapped.state, dtype=np.float64)
        assert physics[i].numpy().tolist() == want.tolist()


@pytest.mark.parametrize("reset_noise", ["torch", "gymnasium"])
@pytest.mark.parametrize("env_id", TWINS)
def test_state_dict_round_trip_continues_exactly(env_id: str, reset_noise: str) -> None:
    cls = TWINS[env_id]
    params = KITS[env_id].spec.Params(max_episode_steps=5)
    if env_id == "Acrobot-v1":
        params = acrobot.Params(max_episode_steps=5, torque_noise_max=0.2)
    env = cls(4, params, reset_noise=reset_noise, seed=1)
    actions = (
        [torch.full((4, 1), float(a)) for a in (-3, 0.5, 1, 2, -1, 0, 3)]
        if env.action_shape
        else [torch.full((4,), a % 3, dtype=torch.int64) for a in range(7)]
    )
    env.step(actions[0])
    saved = env.state_dict()
    first = [env.step(a) for a in actions[1:]]
    copy = cls(4, params, reset_noise=reset_noise, seed=99)
    copy.load_state_dict(saved)
    for a, want in zip(actions[1:], first, strict=True):
        got = copy.step(a)
        assert all(torch.equal(x, y) for x, y in zip(got, want, strict=True))
    with pytest.raises(ValueError, match="num_envs"):
        cls(3, params, reset_noise=reset_noise).load_state_dict(saved)


def test_arguments_are_checked_with_one_line_errors() -> None:
    with pytest.raises(ValueError, match="reset_noise must be one of"):
        Pendulum(2, reset_noise="numpy")
    with pytest.raises(ValueError, match="params must be"):
        Pendulum(2, acrobot.Params())
    with pytest.raises(ValueError, match=r"expected actions of shape \(2, 1\) and a float dtype"):
        Pendulum(2).step(torch.zeros(2))
    with pytest.raises(ValueError, match=r"expected actions of shape \(2,\), dtype torch.int64"):
        MountainCar(2).step(torch.zeros(2))
    with pytest.raises(ValueError, match="set_state: expected physics of shape"):
        Acrobot(2).set_state(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="num_envs must be at least 1"):
        MountainCarContinuous(0)


@pytest.mark.parametrize("env_id", TWINS)
def test_torch_resets_cover_the_spec_reset_box(env_id: str) -> None:
    """Torch reset noise fills the spec's reset box: 4000 copies come within 1% of each side."""
    env = TWINS[env_id](4000, dtype=torch.float64, seed=2)
    physics, _ = env.get_state()
    low, high = (np.asarray(bound) for bound in KITS[env_id].reset_box(env.params))
    margin = 0.01 * (high - low)
    got_low, got_high = physics.min(0).values.numpy(), physics.max(0).values.numpy()
    assert np.all(got_low >= np.float32(low)) and np.all(got_high <= np.float32(high))
    assert np.all(got_low <= low + margin) and np.all(got_high >= high - margin)


def test_acrobot_torch_torque_noise_is_symmetric() -> None:
    """From one state under zero torque, torch noise pushes copies both ways."""
    params = acrobot.Params(torque_noise_max=0.5)
    noisy = Acrobot(500, params, dtype=torch.float64, seed=0)
    plain = Acrobot(500, dtype=torch.float64, seed=0)
    start = torch.tensor([[0.3, -0.2, 0.5, 1.0]] * 500, dtype=torch.float64)
    zero = torch.zeros(500, dtype=torch.int64)
    for env in (noisy, plain):
        env.set_state(start, zero)
    deviation = (
        noisy.step(zero + 1).next_observation[:, 5] - plain.step(zero + 1).next_observation[:, 5]
    )
    assert bool((deviation > 0).any()) and bool((deviation < 0).any())


def test_acrobot_gymnasium_torque_noise_follows_the_spec() -> None:
    """Gymnasium-seeded noise: copy i draws its noise where `spec.reset` left its generator."""
    params = acrobot.Params(torque_noise_max=0.2, max_episode_steps=30)
    env = Acrobot(2, params, dtype=torch.float64, reset_noise="gymnasium", seed=4)
    states = [acrobot.reset(params, np.random.default_rng(4 + i))[0] for i in range(2)]
    actions = np.random.default_rng(0).integers(3, size=(25, 2))
    for row in actions:
        out = env.step(torch.from_numpy(row))
        for i, state in enumerate(states):
            want = acrobot.step(params, state, int(row[i]))
            got = out.next_observation[i].numpy()
            np.testing.assert_allclose(got, want.observation, rtol=0, atol=1e-6)
            states[i] = want.state


def test_continuous_car_stores_float32_states_as_upstream() -> None:
    """Upstream stores the continuous car's state in float32 after every step; so does the twin,
    in float64 too."""
    env = MountainCarContinuous(64, dtype=torch.float64, seed=0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        env.step(torch.rand((64, 1), generator=generator, dtype=torch.float64) * 4 - 2)
        physics, steps = env.get_state()
        stepped = steps > 0
        assert torch.equal(physics[stepped], physics[stepped].float().double())


def test_a_float32_acrobot_near_its_velocity_bounds_is_held_to_its_own_tolerance() -> None:
    """The state Hypothesis found: float32 rounding, amplified by RK4 at high velocities,
    moves an observation entry by more than `STEP_TOL` but within `ACROBOT_FLOAT32_TOL`."""
    from checked_rl.properties.classic_control import (
        ACROBOT_FLOAT32_TOL,
        STEP_TOL,
        check_step,
        set_states,
        tolerance,
    )

    params = acrobot.Params()
    env = Acrobot(1, params, dtype=torch.float32)
    set_states(env, [acrobot.State(2.0, 1.640625, 10.0, 27.0)], torch.float32)
    physics, _ = env.get_state()
    state = acrobot.State.from_physics(physics[0].double().numpy())
    out = env.step(torch.tensor([0]))
    want = acrobot.step(params, state, 0).observation.astype(np.float64)
    error = np.max(np.abs(out.next_observation[0].double().numpy() - want) / (1 + np.abs(want)))
    assert STEP_TOL[torch.float32] < error < ACROBOT_FLOAT32_TOL
    assert tolerance(acrobot, torch.float32) == ACROBOT_FLOAT32_TOL
    assert tolerance(acrobot, torch.float64) == STEP_TOL[torch.float64]
    check_step(KITS["Acrobot-v1"], params, [state], [0], out, ACROBOT_FLOAT32_TOL)


def test_pendulums_torque_cost_may_differ_by_one_float32_unit_and_no_more() -> None:
    """`u = 1.817929` (float32): torch's one-element float32 product `0.001 u^2` rounds one unit
    away from NumPy's, so the float64 twin's reward is 2^-32 off; the property allows that slack
    (`PENDULUM_TORQUE_COST_SLACK`), and not ten times more."""
    from checked_rl.properties.classic_control import (
        PENDULUM_TORQUE_COST_SLACK,
        STEP_TOL,
        check_step,
        set_states,
    )
    from checked_rl.spec.envs import pendulum

    params = pendulum.Params()
    env = Pendulum(1, params, dtype=torch.float64)
    state = pendulum.State(0.5, 0.1, 0)
    set_states(env, [state], torch.float64)
    action = np.array([1.817929], np.float32)
    out = env.step(torch.from_numpy(action[None]))
    want = pendulum.step(params, state, action)
    assert 0 < abs(float(out.reward[0]) - want.reward) <= PENDULUM_TORQUE_COST_SLACK
    check_step(KITS["Pendulum-v1"], params, [state], [action], out, STEP_TOL[torch.float64])
    out.reward[0] += 10 * PENDULUM_TORQUE_COST_SLACK
    with pytest.raises(AssertionError, match="reward"):
        check_step(KITS["Pendulum-v1"], params, [state], [action], out, STEP_TOL[torch.float64])

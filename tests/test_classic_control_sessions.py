"""Acrobot-v1 and MountainCar-v0 through the spec and torch session kinds and check-env (the
continuous ones: test_box_action_sessions.py)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from checked_rl.runtime.cli.check_env import check_session
from checked_rl.runtime.sessions import SPEC_ENVIRONMENTS, TORCH_ENVIRONMENTS, make_session

DISCRETE = ["Acrobot-v1", "MountainCar-v0"]
CONTINUOUS = ["MountainCarContinuous-v0", "Pendulum-v1"]


@pytest.mark.parametrize("env_id", DISCRETE)
def test_spec_and_gymnasium_seeded_torch_sessions_agree(env_id: str) -> None:
    """Same seed, same actions: the torch twin (float64, Gymnasium resets) tracks the spec
    session, whose observations are Gymnasium's own; both pass the session check."""
    make_kwargs = {"max_episode_steps": 7}
    spec = make_session("spec", env_id, num_envs=3, seed=5, make_kwargs=make_kwargs)
    twin = make_session(
        "torch", env_id, num_envs=3, seed=5, dtype=torch.float64,
        make_kwargs={**make_kwargs, "reset_noise": "gymnasium"},
    )  # fmt: skip
    np.testing.assert_allclose(twin.observe().numpy(), spec.observe().numpy(), atol=1e-6)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        actions = torch.randint(3, (3,), generator=generator)
        want, got = spec.step_checked(actions), twin.step_checked(actions)
        np.testing.assert_allclose(got.next_observation, want.next_observation, atol=1e-6)
        assert torch.equal(got.terminated, want.terminated)
        assert torch.equal(got.truncated, want.truncated)
        np.testing.assert_allclose(twin.observe().numpy(), spec.observe().numpy(), atol=1e-6)
    for session in (spec, twin):
        report = check_session(session, steps=30, seed=1)
        assert report.violations == [] and report.episodes > 0


@pytest.mark.parametrize("env_id", DISCRETE)
def test_session_state_round_trips(env_id: str) -> None:
    for kind in ("spec", "torch"):
        session = make_session(kind, env_id, num_envs=2, seed=3)
        session.step_checked(torch.tensor([0, 2]))
        saved = session.state_dict()
        first = [session.step_checked(torch.tensor([a, 1])) for a in range(3)]
        session.load_state_dict(saved)
        again = [session.step_checked(torch.tensor([a, 1])) for a in range(3)]
        for x, y in zip(first, again, strict=True):
            assert torch.equal(x.next_observation, y.next_observation)


def test_continuous_environments_are_session_environments() -> None:
    """Pendulum-v1 and MountainCarContinuous-v0 serve the spec and torch kinds under their
    Gymnasium ids (their tests: test_box_action_sessions.py)."""
    for env_id in CONTINUOUS:
        assert env_id in SPEC_ENVIRONMENTS and env_id in TORCH_ENVIRONMENTS
        assert make_session("spec", env_id).action_box == make_session("torch", env_id).action_box


@pytest.mark.parametrize("env_id", DISCRETE)
def test_check_env_command_passes(env_id: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "checked_rl.runtime.cli", "check-env", env_id, "--steps", "300"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "violations: 0" in result.stdout

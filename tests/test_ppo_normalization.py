"""PPO with running normalisation of observations and rewards, end to end with tiny sizes:
what the learner sees, raw returns in the log, frozen statistics at evaluation, checkpoints,
an exact resume, `checked-rl eval` and the exported actor."""

import csv
import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from checked_rl.runtime.normalization import ObservationNormalizer, RewardScaler
from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from checked_rl.runtime.ppo.collect import collect
from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.normalizing import (
    NormalizingSession,
    evaluation_session,
    normalizing_session,
    raw_rewards,
)
from checked_rl.runtime.ppo.train import train
from checked_rl.runtime.sessions import make_session
from checked_rl.spec import normalization as spec
from tests.runs_helpers import run

pytestmark = pytest.mark.timeout(900)  # fresh interpreters on a loaded machine: a safety net

TINY = PPOConfig(
    seed=3, num_envs=2, horizon=8, hidden=8, epochs=2, minibatches=2, updates=6, eval_every=1,
    eval_episodes=2, eval_max_episode_steps=30, checkpoint_every=1,
    normalize_observations=True, normalize_rewards=True,
)


def _parameters_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values(), strict=True))


def test_both_options_off_wrap_nothing() -> None:
    session = make_session("torch", "CartPole-v1", num_envs=2)
    assert normalizing_session(session, PPOConfig()) is session
    assert evaluation_session(session, session) is session


def test_the_learner_sees_what_the_spec_computes_from_the_raw_stream() -> None:
    config = dataclasses.replace(TINY, gamma=0.9, clip_observations=1.5, clip_rewards=2.0)
    raw = make_session("torch", "CartPole-v1", num_envs=3)
    session = normalizing_session(make_session("torch", "CartPole-v1", num_envs=3), config)
    model = ActorCritic((4,), 2, 8)
    first = session.reset(seed=5)
    raw_first = raw.reset(seed=5)
    moments = spec.update(spec.initial_moments((4,)), raw_first.numpy())
    np.testing.assert_allclose(first.numpy(), spec.normalize(raw_first.numpy(), moments, 1.5),
                               rtol=1e-6, atol=1e-6)
    rollout = collect(session, model, 12, generator=torch.Generator().manual_seed(0))
    # the same actions in the raw session give the raw stream the spec maps
    rewards, terminated, truncated = [], [], []
    for t in range(12):
        step = raw.step_checked(rollout.actions[t])
        np.testing.assert_allclose(
            rollout.observations[t].numpy(), spec.normalize(step.observation.numpy(), moments, 1.5),
            rtol=1e-6, atol=1e-6)
        moments = spec.update(moments, raw.observe().numpy())
        np.testing.assert_allclose(
            rollout.next_observations[t].numpy(),
            spec.normalize(step.next_observation.numpy(), moments, 1.5), rtol=1e-6, atol=1e-6)
        rewards.append(step.reward.numpy())
        terminated.append(step.terminated.numpy())
        truncated.append(step.truncated.numpy())
    scaled, _ = spec.scale_rewards(spec.initial_reward_scaler(3), np.array(rewards),
                                   np.array(terminated), np.array(truncated), gamma=0.9,
                                   clip=2.0)
    np.testing.assert_allclose(rollout.rewards.numpy(), scaled, rtol=1e-6)
    restored = raw_rewards(session, rollout)
    np.testing.assert_array_equal(restored.rewards.numpy(), np.array(rewards))
    assert raw_rewards(session, rollout) is rollout  # taken once
    # a transition's observation is the one observed before the step, its successor the next
    before = session.observe()
    step = session.step_checked(torch.zeros(3, dtype=torch.int64))
    assert torch.equal(step.observation, before)
    done = step.terminated | step.truncated
    assert torch.equal(step.next_observation[~done], session.observe()[~done])


def _episode_returns(config: PPOConfig, run_dir: Path) -> list[str]:
    train(config, run_dir=run_dir)
    with (run_dir / "metrics.csv").open() as file:
        return [row["episode_return_mean"] for row in csv.DictReader(file)]


def test_the_episode_returns_in_the_metrics_stay_raw(tmp_path: Path) -> None:
    # one update: the policy that collects is the initial one, the same in both runs
    config = dataclasses.replace(TINY, normalize_observations=False, horizon=64, updates=1)
    plain = _episode_returns(dataclasses.replace(config, normalize_rewards=False), tmp_path / "a")
    scaled = _episode_returns(config, tmp_path / "b")
    assert plain == scaled and float(plain[0]) > 1.0


def test_evaluation_uses_the_frozen_training_statistics() -> None:
    training = normalizing_session(make_session("torch", "CartPole-v1", num_envs=2), TINY)
    training.reset(seed=0)
    evaluation = evaluation_session(make_session("torch", "CartPole-v1", num_envs=3), training)
    assert isinstance(evaluation, NormalizingSession) and evaluation.rewards is None
    before = training.observations.state_dict()
    evaluation.reset(seed=9)
    step = evaluation.step_checked(torch.zeros(3, dtype=torch.int64))
    after = training.observations.state_dict()
    assert torch.equal(before["mean"], after["mean"]) and before["count"] == after["count"]
    assert float(step.reward.sum()) == 3.0  # CartPole's raw reward, unscaled
    assert bool((step.next_observation == evaluation.observe()).all() or step.terminated.any())
    training.step_checked(torch.zeros(2, dtype=torch.int64))
    assert bool((training.rewards.returns != 0).all())
    training.reset(seed=1)  # new episodes: every discounted return restarts
    assert training.rewards.returns.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kind", ["torch", "spec"])
def test_resume_with_normalisation_is_bit_identical(kind: str, tmp_path: Path) -> None:
    straight = train(TINY, kind=kind)
    checkpoint = tmp_path / "half.pt"
    train(TINY, kind=kind, checkpoint_path=checkpoint, stop_after=3)
    saved = load_checkpoint(checkpoint)
    assert saved["normalization"]["observations"]["count"] > 3 * 8 * 2
    assert saved["normalization"]["rewards"]["returns"].shape == (2,)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        resumed = train(kind=kind, resume=checkpoint)
    assert resumed.log.to_dict() == straight.log.to_dict()
    assert _parameters_equal(resumed.model, straight.model)
    without = train(dataclasses.replace(TINY, normalize_observations=False,
                                        normalize_rewards=False), kind=kind)
    assert not _parameters_equal(without.model, straight.model)


def test_a_checkpoint_without_its_statistics_is_refused(tmp_path: Path) -> None:
    train(TINY, checkpoint_path=tmp_path / "c.pt", stop_after=1)
    saved = load_checkpoint(tmp_path / "c.pt")
    del saved["normalization"]
    save_checkpoint(tmp_path / "bad.pt", saved)
    with pytest.raises(CheckpointError, match="no normalisation statistics"):
        load_checkpoint(tmp_path / "bad.pt")
    saved["normalization"] = {"observations": {"mean": torch.zeros(3), "var": torch.ones(4),
                                               "count": 1.0}, "rewards": None}
    save_checkpoint(tmp_path / "bad.pt", saved)
    with pytest.raises(CheckpointError, match=r"mean must be a tensor of shape \[4\]"):
        load_checkpoint(tmp_path / "bad.pt")
    saved["config"] = {**saved["config"], "normalize_observations": False,
                       "normalize_rewards": False}
    save_checkpoint(tmp_path / "bad.pt", saved)
    with pytest.raises(CheckpointError, match="must be None when the config normalises nothing"):
        load_checkpoint(tmp_path / "bad.pt")
    off = dataclasses.replace(TINY, normalize_observations=False)
    with pytest.raises(CheckpointError, match="cannot resume with normalize_observations=False"):
        train(off, resume=tmp_path / "c.pt")


def test_the_normalisers_refuse_bad_settings_and_states() -> None:
    with pytest.raises(ValueError, match="clip must be > 0"):
        ObservationNormalizer((2,), clip=0.0)
    with pytest.raises(ValueError, match="gamma must lie in"):
        RewardScaler(2, gamma=1.5)
    with pytest.raises(ValueError, match=r"PPOConfig\.clip_rewards must be > 0"):
        PPOConfig(clip_rewards=0.0)
    scaler = RewardScaler(2, gamma=0.9)
    with pytest.raises(ValueError, match=r"returns must be a tensor of shape \[2\]"):
        scaler.load_state_dict({"moments": scaler.moments.state_dict(),
                                "returns": torch.zeros(3)})
    with pytest.raises(ValueError, match="count must be a positive number"):
        scaler.moments.load_state_dict({"mean": torch.tensor(0.0), "var": torch.tensor(1.0),
                                        "count": 0.0})


PLAIN_LOOP = """
import sys, gymnasium, torch
policy = torch.jit.load(sys.argv[1])
for seed in range(int(sys.argv[2]), int(sys.argv[2]) + 3):
    env, total, done = gymnasium.make("CartPole-v1"), 0.0, False
    observation, _ = env.reset(seed=seed)
    while not done:
        action = int(policy(torch.as_tensor(observation)))
        observation, reward, terminated, truncated, _ = env.step(action)
        total, done = total + reward, terminated or truncated
    print(total)
"""


def test_eval_and_the_exported_actor_apply_the_saved_normalisation(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, updates=3, horizon=32, num_envs=4, eval_every=3)
    train(config, checkpoint_path=tmp_path / "n.pt")
    saved = load_checkpoint(tmp_path / "n.pt")
    exported = run("export", "n.pt", "policy.pt", "--no-onnx", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "plain.py").write_text(PLAIN_LOOP)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    plain = subprocess.run([sys.executable, "plain.py", "policy.pt", "7"], cwd=tmp_path,
                           capture_output=True, text=True, env=environment, timeout=120)
    assert plain.returncode == 0, plain.stderr
    evaluated = run("eval", "n.pt", "--kind", "gymnasium", "--seed", "7", "--episodes", "3",
                    "--max-episode-steps", "500", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    returns = json.loads(evaluated.stdout)["returns"]
    assert [float(x) for x in plain.stdout.split()] == returns
    # without the statistics the same weights act otherwise on raw observations
    policy = torch.jit.load(str(tmp_path / "policy.pt"))
    model = ActorCritic((4,), 2, 8)
    model.load_state_dict(saved["model"])
    observations = torch.tensor([[0.0, 0.0, 0.05, 0.0], [1.0, 2.0, -0.1, -1.5]] * 8)
    observations = observations + torch.linspace(-1, 1, 16)[:, None]
    moments = saved["normalization"]["observations"]
    normalized = ((observations.double() - moments["mean"]) / (moments["var"] + 1e-8).sqrt())
    expected = model(normalized.clamp(-10, 10).float())[0].argmax(-1)
    assert torch.equal(policy(observations), expected)

"""Presets per environment (`runtime.ppo.presets`) and the default session kind of `train`."""

import dataclasses
import math
from pathlib import Path

import gymnasium
import pytest

from checked_rl.runtime.cli import main
from checked_rl.runtime.env_registry import SPEC_ENVIRONMENTS, TORCH_ENVIRONMENTS, default_kind
from checked_rl.runtime.ppo.checkpoint import load_checkpoint
from checked_rl.runtime.ppo.config import PRESETS, PPOConfig
from checked_rl.runtime.ppo.presets import (
    ENV_PRESETS,
    GENERAL_DEFAULT,
    PRESET_NAMES,
    SOLVED_OVERRIDES,
    registry_limits,
    resolve,
)
from tests.runs_helpers import CORRIDOR, TINY, run

CLASSIC_CONTROL = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1",
                   "MountainCarContinuous-v0")


def test_every_classic_control_id_has_a_preset() -> None:
    assert set(CLASSIC_CONTROL) == set(ENV_PRESETS)
    assert set(ENV_PRESETS) <= set(SPEC_ENVIRONMENTS) & set(TORCH_ENVIRONMENTS)
    assert PRESET_NAMES == (*PRESETS, *ENV_PRESETS)


@pytest.mark.parametrize("env_id", CLASSIC_CONTROL)
def test_a_preset_is_valid_and_carries_its_source_and_threshold(env_id: str) -> None:
    preset = ENV_PRESETS[env_id]
    assert preset.env_id == env_id
    config = preset.config
    assert PPOConfig.from_dict(config.to_dict()) == config  # every field passes its checks
    spec = gymnasium.spec(env_id)
    expected = spec.reward_threshold if spec.reward_threshold is not None else -200.0
    assert spec.reward_threshold is not None or env_id == "Pendulum-v1"
    assert config.solved_return == expected
    assert config.eval_max_episode_steps == spec.max_episode_steps
    assert preset.threshold_source.startswith(f"{expected:g}: ")
    registry = "gymnasium.spec(id).reward_threshold" in preset.threshold_source
    assert registry == (env_id not in SOLVED_OVERRIDES)
    source = preset.source
    assert ("rl-baselines3-zoo hyperparams/ppo.yml" in source and env_id in source) or (
        env_id == "CartPole-v1" and "`default` preset" in source)


def test_cartpole_keeps_the_default_preset() -> None:
    assert ENV_PRESETS["CartPole-v1"].config == PRESETS["default"] == GENERAL_DEFAULT
    assert resolve("CartPole-v1").config == resolve("CartPole-v1", "default").config


def test_pendulum_has_no_registered_threshold_and_uses_minus_200() -> None:
    assert gymnasium.spec("Pendulum-v1").reward_threshold is None
    assert registry_limits("Pendulum-v1") == (-200.0, 200)
    assert ENV_PRESETS["Pendulum-v1"].config.solved_return == -200.0


def test_the_environment_preset_is_chosen_and_explicit_fields_win() -> None:
    chosen = resolve("Acrobot-v1")
    assert (chosen.config, chosen.name, chosen.note) == (
        ENV_PRESETS["Acrobot-v1"].config, "Acrobot-v1", None)
    given = {"num_envs": 3, "solved_return": -50.0, "eval_max_episode_steps": 7}
    overridden = resolve("Acrobot-v1", None, given).config
    assert overridden == dataclasses.replace(ENV_PRESETS["Acrobot-v1"].config, **given)
    with pytest.raises(ValueError, match=r"PPOConfig\.num_envs must be a positive integer"):
        resolve("Acrobot-v1", None, {"num_envs": 0})


def test_a_named_preset_keeps_its_values_and_takes_the_environments_threshold() -> None:
    assert resolve("CartPole-v1", "torchlean").config == PRESETS["torchlean"]
    on_acrobot = resolve("Acrobot-v1", "torchlean", {"updates": 3})
    assert on_acrobot.name == "torchlean" and on_acrobot.note is None
    assert on_acrobot.config == dataclasses.replace(
        PRESETS["torchlean"], updates=3, solved_return=-100.0, eval_max_episode_steps=500)
    # An environment's preset by name, on another environment.
    borrowed = resolve("MountainCar-v0", "Acrobot-v1").config
    assert borrowed == dataclasses.replace(ENV_PRESETS["Acrobot-v1"].config,
                                           solved_return=-110.0, eval_max_episode_steps=200)
    with pytest.raises(ValueError, match="unknown preset 'fast'; expected one of default, "):
        resolve("CartPole-v1", "fast")


def test_an_id_without_a_preset_uses_the_general_default_and_says_so() -> None:
    registered = resolve("LunarLander-v3")  # a threshold and a step limit in the registry
    assert registered.name == "general"
    assert registered.config == dataclasses.replace(GENERAL_DEFAULT, solved_return=200.0,
                                                    eval_max_episode_steps=1000)
    assert registered.note == ("no preset for LunarLander-v3: using the general default (the "
                               "CartPole-v1 hyperparameters), solved at its reward_threshold 200")
    unknown = resolve("GridWorld-v0")  # not in Gymnasium's registry: no threshold, no limit
    assert unknown.config == dataclasses.replace(GENERAL_DEFAULT, solved_return=math.inf)
    assert unknown.note is not None and "no early stop" in unknown.note
    assert len(unknown.note.splitlines()) == 1
    assert resolve("GridWorld-v0", None, {"solved_return": 5.0}).config.solved_return == 5.0


def test_the_torch_kind_is_the_default_wherever_a_twin_exists() -> None:
    for env_id in TORCH_ENVIRONMENTS:
        assert default_kind(env_id) == "torch"
    for env_id in ("LunarLander-v3", "my_envs:Corridor-v0", "checked_rl/CartPole-v1"):
        assert default_kind(env_id) == "gymnasium"


def test_train_help_names_the_presets_and_the_default_kinds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"config preset: {', '.join(PRESET_NAMES)} (default: the preset of --env-id" in shown
    assert f"torch for the ids with a runtime twin, {', '.join(TORCH_ENVIRONMENTS)}" in shown
    assert "gymnasium for any other id" in shown


def test_train_picks_the_preset_of_env_id_and_the_torch_kind(tmp_path: Path) -> None:
    saved = tmp_path / "acrobot.pt"
    small = {"updates": 1, "eval_episodes": 2, "eval_max_episode_steps": 10}
    options = [f"--{name.replace('_', '-')}={value}" for name, value in small.items()]
    assert main(["train", "--env-id", "Acrobot-v1", *options, "--quiet",
                 "--run-dir", str(tmp_path / "run"), "--checkpoint", str(saved)]) == 0
    checkpoint = load_checkpoint(saved)
    assert checkpoint["run"]["kind"] == "torch"
    assert PPOConfig.from_dict(checkpoint["config"]) == dataclasses.replace(
        ENV_PRESETS["Acrobot-v1"].config, **small)


def test_an_id_without_a_twin_trains_on_the_gymnasium_kind_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "my_envs.py").write_text(CORRIDOR)
    result = run("train", *TINY, "--updates", "1", "--env-id", "my_envs:Corridor-v0",
                 "--run-dir", "c", "--checkpoint", "c.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if "no preset" in line]
    assert "no preset" not in result.stderr  # stderr is kept for errors
    assert notes == ["no preset for my_envs:Corridor-v0: using the general "
                     "default (the CartPole-v1 hyperparameters), no early stop: Gymnasium "
                     "registers no reward_threshold for it"]
    checkpoint = load_checkpoint(tmp_path / "c.pt")
    assert checkpoint["run"]["kind"] == "gymnasium"
    config = PPOConfig.from_dict(checkpoint["config"])
    assert config.solved_return == math.inf and config.eval_max_episode_steps == 30


def test_a_normalised_box_policy_is_evaluated_by_its_gaussian_head() -> None:
    # `checked-rl eval` of a normalised Pendulum checkpoint wraps the model; the wrapper must
    # keep the head, else `evaluate` takes the Gaussian means for logits (found by the
    # issue's done-when check: action shape (20,) instead of (20, 1)).
    import torch

    from checked_rl.runtime.normalization import FrozenObservationNormalizer
    from checked_rl.runtime.ppo.evaluate import evaluate_episodes
    from checked_rl.runtime.ppo.model import ActorCritic
    from checked_rl.runtime.ppo.normalizing import NormalizedPolicy
    from checked_rl.runtime.sessions import make_session

    session = make_session("torch", "Pendulum-v1", num_envs=2)
    model = ActorCritic.for_session(session, 8)
    normalizer = FrozenObservationNormalizer(torch.zeros(3), torch.ones(3), clip=10.0,
                                             epsilon=1e-8)
    policy = NormalizedPolicy(model, normalizer)
    assert policy.head is model.head
    returns, lengths = evaluate_episodes(session, policy, seed=0, max_episode_steps=3)
    assert returns.shape == (2,) and lengths.tolist() == [3, 3]

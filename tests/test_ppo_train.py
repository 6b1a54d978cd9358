"""End-to-end PPO training with tiny sizes: every session kind, determinism, checkpoints, resume."""

import dataclasses
import json
import warnings
from pathlib import Path

import pytest
import torch

from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from checked_rl.runtime.ppo.config import PRESETS, PPOConfig, preset
from checked_rl.runtime.ppo.evaluate import evaluate
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.train import train
from checked_rl.runtime.ppo.trainlog import TrainLog, plot_path
from checked_rl.runtime.sessions import make_session

TINY = PPOConfig(
    seed=3,
    num_envs=2,
    horizon=8,
    hidden=8,
    epochs=2,
    minibatches=2,
    updates=4,
    eval_every=2,
    eval_episodes=2,
    eval_max_episode_steps=30,
    checkpoint_every=1,
)
"""A run of a few hundred environment steps: too short to learn, long enough to exercise all."""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    first, second = _parameters(a), _parameters(b)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), f"parameter {name} differs"


@pytest.mark.parametrize("kind", ["torch", "spec", "gymnasium", "gymnasium-subprocess"])
def test_short_run_writes_a_valid_log_on_each_session_kind(kind: str, tmp_path: Path) -> None:
    log_path = tmp_path / "log.json"
    result = train(TINY, kind=kind, log_path=log_path, checkpoint_path=tmp_path / "run.pt")
    assert (result.updates, result.env_steps) == (4, 4 * TINY.batch_size)
    log = TrainLog.read(log_path)
    assert log.steps == [2 * TINY.batch_size, 4 * TINY.batch_size]
    assert all(1.0 <= value <= TINY.eval_max_episode_steps for value in log.values)
    assert log.to_dict() == json.loads(log_path.read_text())
    assert f"kind={kind}" in log.notes and "horizon=8" in log.notes
    assert plot_path(log_path).read_bytes().startswith(PNG_MAGIC)
    assert load_checkpoint(tmp_path / "run.pt")["update"] == 4


def test_same_seed_same_log_and_parameters_bit_for_bit() -> None:
    first, second = train(TINY), train(TINY)
    assert first.log.to_dict() == second.log.to_dict()
    _assert_same_parameters(first.model, second.model)
    other = train(dataclasses.replace(TINY, seed=TINY.seed + 1))
    assert not torch.equal(other.model.actor[0].weight, first.model.actor[0].weight)


@pytest.mark.parametrize(
    ("kind", "env_id"),
    [("torch", "CartPole-v1"), ("spec", "CartPole-v1"), ("torch", "GridWorld-v0")],
)
def test_resume_continues_as_if_never_stopped(kind: str, env_id: str, tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, updates=6, eval_every=1)
    straight = train(config, kind=kind, env_id=env_id)
    checkpoint = tmp_path / "half.pt"
    half = train(config, kind=kind, env_id=env_id, checkpoint_path=checkpoint, stop_after=3)
    saved = load_checkpoint(checkpoint)
    assert half.updates == 3 and saved["update"] == 3
    assert saved["session"]["kind"] == kind and saved["session"]["step_count"] == 3 * 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # an exact resume has nothing to warn about
        resumed = train(kind=kind, env_id=env_id, resume=checkpoint, log_path=tmp_path / "l.json")
    assert resumed.updates == 6
    assert resumed.log.to_dict() == straight.log.to_dict()
    _assert_same_parameters(resumed.model, straight.model)


def test_resume_of_a_session_without_captured_state_restarts_its_episodes(
    tmp_path: Path,
) -> None:
    config = dataclasses.replace(TINY, updates=2, eval_every=1)
    train(config, kind="gymnasium", checkpoint_path=tmp_path / "g.pt", stop_after=1)
    saved = load_checkpoint(tmp_path / "g.pt")
    assert saved["session"] is None
    restart = r"^resuming a 'gymnasium' run whose checkpoint holds no session state .* fresh seeds"
    with pytest.warns(UserWarning, match=restart):
        resumed = train(resume=tmp_path / "g.pt", kind="gymnasium")
    assert resumed.updates == 2 and len(resumed.log.values) == 2


def test_checkpoint_round_trip_rebuilds_the_policy(tmp_path: Path) -> None:
    result = train(TINY, checkpoint_path=tmp_path / "c.pt")
    saved = load_checkpoint(tmp_path / "c.pt")
    assert PPOConfig.from_dict(saved["config"]) == TINY
    assert saved["run"] == {"kind": "torch", "env_id": "CartPole-v1", "device": "cpu"}
    assert saved["log"] == result.log.to_dict()
    network = saved["network"]
    model = ActorCritic(tuple(network["observation_shape"]), network["n_actions"],
                        network["hidden"])
    model.load_state_dict(saved["model"])
    _assert_same_parameters(model, result.model)
    observations = torch.randn(5, 4)
    for ours, theirs in zip(model(observations), result.model(observations), strict=True):
        assert torch.equal(ours, theirs)


def test_interrupted_run_saves_its_completed_updates(tmp_path: Path) -> None:
    def interrupt(env_steps: int, average: float) -> None:
        if env_steps == 2 * TINY.batch_size:
            raise KeyboardInterrupt

    config = dataclasses.replace(TINY, eval_every=1, checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        train(config, log_path=tmp_path / "log.json", checkpoint_path=tmp_path / "c.pt",
              on_evaluation=interrupt)
    saved = load_checkpoint(tmp_path / "c.pt")
    assert saved["update"] == 2
    assert TrainLog.read(tmp_path / "log.json").steps == [TINY.batch_size, 2 * TINY.batch_size]
    assert plot_path(tmp_path / "log.json").is_file()


def _refused(path: Path) -> str:
    """The one-line message of the `CheckpointError` that loading `path` raises."""
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and str(path) in message, message
    return message


def test_load_checkpoint_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    assert "does not exist" in _refused(tmp_path / "absent.pt")
    for name, content in [("garbage.pt", b"not a checkpoint"), ("empty.pt", b"")]:
        (tmp_path / name).write_bytes(content)
        assert "is not a checkpoint of checked-rl (expected a file written by" in _refused(
            tmp_path / name
        )
    with pytest.raises(CheckpointError, match="lacks keys"):
        save_checkpoint(tmp_path / "partial.pt", {"format": 2})


def test_load_checkpoint_refuses_a_format_1_checkpoint_of_0_1_in_one_line(
    tmp_path: Path,
) -> None:
    train(dataclasses.replace(TINY, updates=1), checkpoint_path=tmp_path / "c.pt")
    saved = load_checkpoint(tmp_path / "c.pt")
    config = saved["config"]
    config["eval_max_steps"] = config.pop("eval_max_episode_steps")
    run = saved["run"]
    run["env"] = run.pop("kind")
    old = tmp_path / "old.pt"
    torch.save({**saved, "format": 1, "config": config, "run": run}, old)
    assert _refused(old) == f"checkpoint {old} has format 1, expected 2"


def test_a_config_of_0_1_is_refused_in_one_line() -> None:
    values = PPOConfig().to_dict()
    values["eval_max_steps"] = values.pop("eval_max_episode_steps")
    with pytest.raises(ValueError) as refused:
        PPOConfig.from_dict(values)
    message = str(refused.value)
    assert message.startswith("unknown PPOConfig fields ['eval_max_steps']; known: [")
    assert "'eval_max_episode_steps'" in message and len(message.splitlines()) == 1


def test_presets() -> None:
    torchlean = PRESETS["torchlean"]
    assert (torchlean.hidden, torchlean.horizon, torchlean.gamma, torchlean.lam) == (
        32, 64, 0.99, 0.95)
    assert (torchlean.learning_rate, torchlean.epochs, torchlean.minibatches) == (3e-4, 2, 1)
    assert (torchlean.updates, torchlean.eval_every, torchlean.eval_episodes) == (1000, 50, 5)
    assert (torchlean.solved_return, torchlean.num_envs) == (475.0, 1)
    with pytest.raises(ValueError, match="num_envs must be a positive integer, got -1"):
        preset("default", num_envs=-1)
    with pytest.raises(ValueError, match="minibatches must divide"):
        preset("default", minibatches=3)
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        preset("fast")


def test_torchlean_preset_runs() -> None:
    config = preset("torchlean", updates=2, eval_every=1, eval_episodes=2,
                    eval_max_episode_steps=20)
    result = train(config)
    assert result.updates == 2 and result.env_steps == 2 * 64


def test_resume_refuses_a_run_the_checkpoint_does_not_fit(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, updates=2)
    train(config, checkpoint_path=tmp_path / "c.pt", stop_after=1)
    with pytest.raises(CheckpointError, match=r"cannot resume with hidden=16: .* hidden=8"):
        train(dataclasses.replace(config, hidden=16), resume=tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="cannot resume with num_envs=4"):
        train(dataclasses.replace(config, num_envs=4), resume=tmp_path / "c.pt")
    other_kind = "captured with kind='torch', this one has kind='spec'"
    with pytest.raises(CheckpointError, match=other_kind):
        train(resume=tmp_path / "c.pt", kind="spec")


def _always_left(observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A policy whose greedy action is 0 (push left) everywhere."""
    logits = torch.tensor([1.0, 0.0]).expand(len(observations), 2)
    return logits, torch.zeros(len(observations))


def _gymnasium_episode_length(seed: int, max_episode_steps: int) -> int:
    """Steps of one always-left CartPole-v1 episode in Gymnasium itself, cut at
    `max_episode_steps`."""
    import gymnasium

    env = gymnasium.make("CartPole-v1")
    env.reset(seed=seed)
    steps, done = 0, False
    while not done and steps < max_episode_steps:
        _, _, terminated, truncated, _ = env.step(0)
        steps, done = steps + 1, terminated or truncated
    env.close()
    return steps


@pytest.mark.parametrize("max_episode_steps", [500, 9])
def test_evaluate_counts_each_environments_first_episode(max_episode_steps: int) -> None:
    seed, episodes = 11, 3
    with make_session("gymnasium", num_envs=episodes) as session:
        returns = evaluate(session, _always_left, seed=seed, max_episode_steps=max_episode_steps)
    expected = [float(_gymnasium_episode_length(seed + j, max_episode_steps))
                for j in range(episodes)]
    assert returns.tolist() == expected


def test_training_leaves_the_callers_thread_count_as_it_found_it() -> None:
    before = torch.get_num_threads()
    threads = 2 if TINY.threads == 1 else 1
    torch.set_num_threads(threads)
    try:
        train(TINY)
        assert torch.get_num_threads() == threads
        with pytest.raises(ValueError):
            train(TINY, kind="torch", env_id="NoSuchEnvironment-v0")
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)

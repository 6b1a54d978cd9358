"""The parts of training runs one at a time, in process: metrics, episode tracking, the
metrics file, run directories, limits, seed lists, the seed table, module ids."""

import math
from pathlib import Path

import pytest
import torch

from checked_rl.runtime.cli.env_ids import EnvIdError, checkpoint_env_id, resolve_env_id
from checked_rl.runtime.cli.seeds import (
    _aggregate,
    _forwarded,
    format_table,
    mean_curve,
    parse_seeds,
)
from checked_rl.runtime.ppo.limits import check_sizes
from checked_rl.runtime.ppo.metrics import CSV_COLUMNS, MetricsLog
from checked_rl.runtime.ppo.rollout import Rollout
from checked_rl.runtime.ppo.rundir import check_file_path, default_run_dir, resolve_resume
from checked_rl.runtime.ppo.update import EpisodeTracker, explained_variance


def test_explained_variance() -> None:
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns, returns) == 1.0
    assert explained_variance(-returns, returns) == pytest.approx(-3.0)
    assert explained_variance(returns - 1.0, returns) == pytest.approx(1.0)
    assert explained_variance(returns.mean().expand(4), returns) == pytest.approx(0.0)
    assert math.isnan(explained_variance(returns, torch.ones(4)))


def _rollout(rewards: list[list[float]], done: list[list[bool]]) -> Rollout:
    t, n = len(rewards), len(rewards[0])
    zeros = torch.zeros(t, n)
    return Rollout(observations=torch.zeros(t, n, 1), actions=torch.zeros(t, n, dtype=torch.int64),
                   log_probs=zeros, rewards=torch.tensor(rewards), terminated=torch.tensor(done),
                   truncated=torch.zeros(t, n, dtype=torch.bool), values=zeros,
                   next_values=zeros, next_observations=torch.zeros(t, n, 1))


def test_episode_tracker_reports_the_episodes_that_ended_across_rollouts() -> None:
    tracker = EpisodeTracker.zeros(2, torch.device("cpu"))
    ended = tracker.observe(_rollout([[1.0, 2.0], [1.0, 2.0]], [[False, True], [False, False]]))
    assert ended == ([2.0], [1])
    ended = tracker.observe(_rollout([[3.0, 1.0]], [[True, True]]))
    assert ended == ([5.0, 3.0], [3, 2])
    assert tracker.returns.tolist() == [0.0, 0.0] and tracker.lengths.tolist() == [0, 0]


def test_metrics_log_keeps_rows_up_to_the_resumed_update(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    for update in (1, 2, 3):
        log.append({"update": update, "env_steps": 10 * update, "policy_loss": 0.5,
                    "episodes": 0})
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[1].startswith("1,10,,0.5,") and len(lines) == 4
    again = MetricsLog(path, keep_until=2)
    assert [row["update"] for row in again.rows] == [1.0, 2.0]
    assert len(path.read_text().splitlines()) == 3
    assert math.isnan(again.rows[0]["eval_mean"]) and again.rows[1]["policy_loss"] == 0.5
    assert MetricsLog(path).rows == [] and len(path.read_text().splitlines()) == 1


def test_default_run_dirs_are_unique_and_name_the_environment(tmp_path: Path) -> None:
    first = default_run_dir("my_envs:Corridor-v0", root=tmp_path)
    assert first.parent == tmp_path / "my_envs_Corridor-v0"
    first.mkdir(parents=True)
    second = default_run_dir("my_envs:Corridor-v0", root=tmp_path)
    assert second != first and second.name.startswith(first.name)
    assert default_run_dir("CartPole-v1", "mine", root=tmp_path) == tmp_path / "CartPole-v1/mine"


def test_paths_must_name_a_file(tmp_path: Path) -> None:
    for value in ("", " ", ".", "..", "dir/", str(tmp_path)):
        with pytest.raises(ValueError, match="must name a file"):
            check_file_path("--log", value)
    assert check_file_path("--log", "a/b.json") == Path("a/b.json")


def test_resume_takes_a_run_directory_or_a_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ValueError, match=r"has no checkpoint last\.pt"):
        resolve_resume(str(run))
    (run / "last.pt").write_bytes(b"")
    assert resolve_resume(str(run)) == (run / "last.pt", run)
    assert resolve_resume(str(run / "last.pt")) == (run / "last.pt", None)
    (run / "config.json").write_text("{}")
    assert resolve_resume(str(run / "last.pt")) == (run / "last.pt", run)
    with pytest.raises(ValueError, match="no such run directory or checkpoint"):
        resolve_resume(str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="must name"):
        resolve_resume("")


def test_limits_name_the_option_that_does_not_fit() -> None:
    sizes = {"kind": "torch", "observation_shape": (4,), "n_actions": 2, "limit": 10**9}
    check_sizes(**sizes, num_envs=64, horizon=16, hidden=64, eval_episodes=20)
    for option, big in (("--num-envs", {"num_envs": 10**8}), ("--hidden", {"hidden": 10**5}),
                        ("--eval-episodes", {"eval_episodes": 10**8})):
        with pytest.raises(ValueError, match=f"^{option} .*: needs about .* limit of 1 GB"):
            check_sizes(**sizes, **big)
    with pytest.raises(ValueError, match=r"^--episodes 100000000"):
        check_sizes(**sizes, eval_episodes=10**8, episodes_option="--episodes")
    gym = {**sizes, "kind": "gymnasium"}
    with pytest.raises(ValueError, match=r"^--num-envs 30000"):
        check_sizes(**gym, num_envs=30_000)  # 40 kB of Python objects per environment


def test_seed_lists() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,1,1-2") == [1, 2, 3]
    assert parse_seeds(str(2**64 - 1)) == [2**64 - 1]
    for bad in ("", "a", "3-1", "-1", f"0-{2**64}", "0-5000"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_a_seed_gets_the_parents_options_but_its_own_seed_and_directory() -> None:
    argv = ["train", "--seeds", "0-4", "--jobs=2", "--updates", "3", "--run-dir", "x",
            "--name", "n", "--seed=5", "--quiet"]
    assert _forwarded(argv) == ["--updates", "3", "--quiet"]


def test_the_mean_curve_holds_a_finished_runs_last_value() -> None:
    assert mean_curve([([1, 2], [10.0, 20.0])]) == ([1, 2], [10.0, 20.0])
    assert mean_curve([([1, 2], [10.0, 20.0]), ([1], [0.0])]) == ([1, 2], [5.0, 10.0])


def test_the_seed_table_and_aggregate() -> None:
    rows = [
        {"seed": 0, "exit_code": 0, "solved": True, "steps_to_solve": 100,
         "seconds_to_solve": 1.5, "final_return": 500.0},
        {"seed": 1, "exit_code": 0, "solved": False, "steps_to_solve": None,
         "seconds_to_solve": None, "final_return": 100.0},
        {"seed": 2, "exit_code": 1},
    ]
    lines = format_table(rows).splitlines()
    assert lines[1].split() == ["0", "yes", "100", "1.5", "500.0"]
    assert lines[2].split() == ["1", "no", "-", "-", "100.0"]
    assert lines[3].split() == ["2", "failed", "-", "-", "-"]
    aggregate = _aggregate(rows)
    assert (aggregate["seeds"], aggregate["solved"]) == (3, 1)
    assert aggregate["final_return"] == {"mean": 300.0, "std": 200.0, "min": 100.0,
                                         "max": 500.0}


def test_env_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "units_envs.py").write_text(
        "import gymnasium\n\nclass Plain(gymnasium.Env):\n    pass\n\nNOT_AN_ENV = 3\n"
    )
    assert resolve_env_id("CartPole-v1") == "CartPole-v1"
    assert resolve_env_id("units_envs:Plain") == "units_envs:Plain"
    for bad, fragment in (("units_envs:NOT_AN_ENV", "neither registers"),
                          ("units_envs:", "expected ID or module:Name"),
                          (":X", "expected ID or module:Name"),
                          ("", "must name an environment")):
        with pytest.raises(EnvIdError, match=fragment):
            resolve_env_id(bad)
    with pytest.raises(EnvIdError, match="--trust-checkpoint-env"):
        checkpoint_env_id("units_envs:Plain", None, False, "checkpoint c.pt")
    assert checkpoint_env_id("units_envs:Plain", None, True, "c") == "units_envs:Plain"
    assert checkpoint_env_id("units_envs:Plain", "CartPole-v1", False, "c") == "CartPole-v1"
    assert checkpoint_env_id("CartPole-v1", None, False, "c") == "CartPole-v1"


def test_seeds_lie_in_0_to_2_to_the_64() -> None:
    from checked_rl.runtime.ppo.config import PPOConfig

    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\^64\)"):
            PPOConfig(seed=bad)
    with pytest.raises(ValueError, match="too close to 2\\^64"):
        PPOConfig(seed=2**64 - 1)
    assert PPOConfig(seed=2**64 - 1_000_020).eval_seed + 20 == 2**64


def test_evaluation_counts_each_first_episodes_length() -> None:
    from checked_rl.runtime.ppo.evaluate import evaluate_episodes
    from checked_rl.runtime.sessions import make_session

    def left(observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.tensor([1.0, 0.0]).expand(len(observations), 2)
        return logits, torch.zeros(len(observations))

    with make_session("torch", num_envs=3) as session:
        returns, lengths = evaluate_episodes(session, left, seed=0, max_episode_steps=500)
    assert lengths.tolist() == returns.long().tolist()  # CartPole: reward 1 per step
    assert all(5 <= n <= 20 for n in lengths.tolist())  # pushing left falls within a few steps


def test_a_class_id_whose_name_the_module_registered_with_a_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gymnasium

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "versioned_envs.py").write_text(
        "import gymnasium\n\nclass Versioned(gymnasium.Env):\n    pass\n\n"
        "gymnasium.register(id='Versioned-v3', entry_point=Versioned)\n"
    )
    assert resolve_env_id("versioned_envs:Versioned") == "versioned_envs:Versioned"
    assert "Versioned" not in gymnasium.registry  # left to Gymnasium: the latest version


def test_best_keeps_the_first_of_equal_evaluations(tmp_path: Path) -> None:
    """A run whose greedy returns never improve (seed 1 of this tiny config: 10.0 each time,
    reproducible bit for bit on the CPU): `best.pt` stays the first update's."""
    from checked_rl.runtime.ppo.checkpoint import load_checkpoint
    from checked_rl.runtime.ppo.config import PPOConfig
    from checked_rl.runtime.ppo.train import train

    config = PPOConfig(seed=1, num_envs=4, horizon=8, hidden=8, updates=3, eval_episodes=2,
                       eval_max_episode_steps=30)
    result = train(config, run_dir=tmp_path / "run")
    assert result.log.values == [10.0, 10.0, 10.0] and result.best == 10.0
    assert load_checkpoint(tmp_path / "run" / "best.pt")["update"] == 1
    assert load_checkpoint(tmp_path / "run" / "last.pt")["update"] == 3

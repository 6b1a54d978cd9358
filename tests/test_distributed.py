"""Data-parallel PPO with real torchrun processes: 2 gloo ranks on the CPU, small sizes.

- one update's averaged gradient is the gradient of the concatenated minibatch, and the
  advantages are z-scored over every rank (`tests/distributed_worker.py`);
- the replica check catches a one-ulp difference between ranks, and runs after every update of
  every distributed run (so every 2-rank run below also checks identical parameters);
- a world of one under torchrun is the plain run bit for bit;
- `--resume` under the same world size continues exactly, and another world size is refused;
- a rank that raises makes every rank exit, with the error shown once;
- `checked-rl train --nproc 2` solves CartPole.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint
from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.distributed import env_seed, learner_seed, validate_rank_states
from checked_rl.runtime.ppo.train import train
from tests.distributed_faults import ENV_ID
from tests.runs_helpers import COMMAND, REPOSITORY

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
SAFETY_TIMEOUT = 600.0
"""Seconds a torchrun may take at most: a safety net against a hang, not a speed assertion."""
GRADIENT_RTOL = 1e-5
GRADIENT_ATOL = 1e-6
"""The averaged gradient against the concatenated one: float32 sums in another order."""
TINY = ["--num-envs", "4", "--horizon", "8", "--hidden", "8", "--eval-episodes", "2",
        "--eval-max-episode-steps", "30", "--no-anneal-lr", "--eval-every", "1", "--quiet"]
STATE_KEYS = ("model", "optimizer", "rng", "session")


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment,
                          timeout=SAFETY_TIMEOUT)


def _torchrun(nproc: int, program: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc-per-node=N --no-python -- PROGRAM` (the guide's form)."""
    return _run([*TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", "--no-python", "--",
                 *program], cwd)


def _assert_same(first: object, second: object, where: str = "") -> None:
    """Nested dicts/lists of tensors and plain values, equal bit for bit."""
    if isinstance(first, torch.Tensor):
        assert isinstance(second, torch.Tensor) and torch.equal(first, second), where
    elif isinstance(first, dict):
        assert isinstance(second, dict) and set(first) == set(second), where
        for key in first:
            _assert_same(first[key], second[key], f"{where}.{key}")
    elif isinstance(first, list | tuple):
        assert isinstance(second, list | tuple) and len(first) == len(second), where
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            _assert_same(a, b, f"{where}[{i}]")
    else:
        assert first == second, where


def test_averaged_gradient_is_the_gradient_of_the_concatenated_minibatch(tmp_path: Path) -> None:
    out = tmp_path / "gradients.pt"
    done = _torchrun(2, [sys.executable, str(REPOSITORY / "tests" / "distributed_worker.py"),
                         str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    result = torch.load(out, weights_only=False)
    for averaged, concatenated in zip(result["averaged"], result["concatenated"], strict=True):
        torch.testing.assert_close(averaged, concatenated, rtol=GRADIENT_RTOL,
                                   atol=GRADIENT_ATOL)
    assert any(bool(grad.abs().max() > 0) for grad in result["averaged"])
    torch.testing.assert_close(result["scored"], result["concatenated_scored"])
    assert result["metrics"] == {"approx_kl": 0.5, "one": 1.0}  # ranks 0 and 1, averaged
    assert result["sigterm"] == "stopped by the launcher (SIGTERM): another rank failed"
    # One unit in the last place of one parameter on rank 1: caught on both ranks.
    assert result["caught"] == ["the parameters of ranks [1] differ from rank 0's"] * 2


def test_world_size_one_under_torchrun_is_the_plain_run_bit_for_bit(tmp_path: Path) -> None:
    options = ["train", *TINY, "--updates", "3", "--minibatches", "4"]
    plain = _run([*COMMAND, *options, "--run-dir", "plain"], tmp_path)
    assert plain.returncode == 0, plain.stderr
    launched = _torchrun(1, [*COMMAND, *options, "--run-dir", "launched"], tmp_path)
    assert launched.returncode == 0, launched.stderr
    first = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)
    second = torch.load(tmp_path / "launched" / "last.pt", weights_only=True)
    assert "distributed" not in second
    for key in (*STATE_KEYS, "log", "update", "env_steps", "config", "run"):
        _assert_same(first[key], second[key], key)
    logs = [json.loads((tmp_path / run / "trainlog.json").read_text())
            for run in ("plain", "launched")]
    assert logs[0]["series"] == logs[1]["series"] and logs[0]["steps"] == logs[1]["steps"]


def test_two_rank_resume_is_exact_and_needs_the_same_world_size(tmp_path: Path) -> None:
    options = ["train", *TINY, "--minibatches", "2"]
    straight = _torchrun(2, [*COMMAND, *options, "--updates", "4", "--run-dir", "straight"],
                         tmp_path)
    assert straight.returncode == 0, straight.stderr
    first = _torchrun(2, [*COMMAND, *options, "--updates", "2", "--run-dir", "split"], tmp_path)
    assert first.returncode == 0, first.stderr
    refused = _run([*COMMAND, "train", "--resume", "split", "--updates", "4", "--quiet"],
                   tmp_path)
    assert refused.returncode == 2
    assert "saved by 2 rank(s); resume it with 2, not 1" in refused.stderr
    resumed = _torchrun(2, [*COMMAND, "train", "--resume", "split", "--updates", "4", "--quiet"],
                        tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert whole["update"] == split["update"] == 4
    assert whole["env_steps"] == 4 * 2 * 4 * 8  # updates x ranks x envs x horizon
    validate_rank_states(whole["distributed"])
    for key in (*STATE_KEYS, "distributed"):
        _assert_same(whole[key], split[key], key)
    # Rank 1 is not rank 0: its own generator and environments (seeds 4..7, not 0..3).
    rank_one = whole["distributed"]["ranks"][0]
    assert not torch.equal(whole["rng"], rank_one["rng"])
    with pytest.raises(AssertionError):
        _assert_same(whole["session"], rank_one["session"])


def test_a_failing_rank_stops_every_rank_with_the_error_shown_once(tmp_path: Path) -> None:
    failed = _run([*COMMAND, "train", "--nproc", "2", "--kind", "gymnasium", "--env-id",
                   f"tests.distributed_faults:{ENV_ID}", "--num-envs", "2", "--horizon", "8",
                   "--hidden", "8", "--eval-episodes", "1", "--eval-max-episode-steps", "5",
                   "--run-dir", "run", "--quiet"], tmp_path)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 2, output
    assert output.count("simulated simulator failure") == 1, output
    assert "rank 1 of 2 failed (exit code 2); every rank stopped" in failed.stderr
    assert "Traceback" not in output and "torchrun" not in output.lower(), output
    # Rank 0 stopped in step with rank 1 and kept the last completed update.
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["update"] == 2 and saved["distributed"]["world_size"] == 2


def test_two_ranks_solve_cartpole_from_the_command_line(tmp_path: Path) -> None:
    done = _run([*COMMAND, "train", "--nproc", "2", "--num-envs", "32", "--eval-every", "4",
                 "--eval-episodes", "10", "--run-dir", "run",
                 "--log", "log.json", "--quiet"], tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["solved"], summary
    assert (tmp_path / "log.json").is_file()  # --log reached the program, not torchrun
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["distributed"]["world_size"] == 2
    assert saved["env_steps"] == saved["update"] * 2 * 32 * 16


@pytest.mark.parametrize(("argv", "message"), [
    (["--nproc", "0"], "--nproc must be a positive number of processes, got 0"),
    (["--nproc", "2", "--seeds", "0,1"],
     "--nproc cannot be combined with --seeds (each seed is one run)"),
])
def test_bad_nproc_is_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    done = _run([*COMMAND, "train", *argv], tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"checked-rl train: error: {message}\n"


def test_rank_seeds_are_distinct_and_rank_zero_keeps_the_seed() -> None:
    assert learner_seed(3, 0) == 3
    seeds = {learner_seed(seed, rank) for seed in range(4) for rank in range(1, 5)}
    assert len(seeds) == 16 and not seeds & set(range(4))
    assert [env_seed(5, rank, 4) for rank in range(3)] == [5, 9, 13]


def test_a_checkpoint_with_bad_rank_states_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    train(PPOConfig(num_envs=2, horizon=4, hidden=8, updates=1, eval_episodes=1,
                    eval_max_episode_steps=5), checkpoint_path=path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["distributed"] = {"world_size": 2, "ranks": []}
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="world_size - 1 rank states"):
        load_checkpoint(path)


def test_rank_states_are_validated() -> None:
    good = {"world_size": 2, "ranks": [{"rng": torch.zeros(4, dtype=torch.uint8),
                                         "session": None}]}
    validate_rank_states(good)
    for bad in ({"world_size": 1, "ranks": []}, {"world_size": 2, "ranks": []},
                {"world_size": 2, "ranks": [{"rng": torch.zeros(4), "session": None}]},
                {"world_size": 2, "ranks": [{"rng": torch.zeros(4, dtype=torch.uint8),
                                              "session": 3}]},
                {"world_size": True, "ranks": []}, [], {"world_size": 2}):
        with pytest.raises(TypeError):
            validate_rank_states(bad)


def test_normalisation_is_refused_with_more_than_one_rank(tmp_path: Path) -> None:
    done = _run([*COMMAND, "train", "--nproc", "2", "--normalize-rewards", "--updates", "1",
                 "--quiet"], tmp_path)
    assert done.returncode == 2, done.stderr
    message = "--normalize-observations and --normalize-rewards take one rank only"
    assert done.stderr.count(message) == 1, done.stderr
    assert "Traceback" not in done.stderr

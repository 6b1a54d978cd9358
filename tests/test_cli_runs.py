"""Training runs end to end, in real processes: run directories, metrics, resume, several
seeds, eval statistics, export into a plain Gymnasium loop, module ids, recording."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checked_rl.runtime.cli import main
from checked_rl.runtime.ppo.checkpoint import load_checkpoint
from checked_rl.runtime.ppo.metrics import CSV_COLUMNS
from tests.runs_helpers import CORRIDOR, TINY, one_line_error, run

pytestmark = pytest.mark.timeout(900)  # fresh interpreters on a loaded machine: a safety net

TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript"))
PYGAME = importlib.util.find_spec("pygame") is not None


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    """A default `checked-rl train` (tiny sizes) in an empty directory: (cwd, run dir, out,
    err)."""
    cwd = tmp_path_factory.mktemp("fresh")
    result = run("train", *TINY, "--updates", "3", cwd=cwd)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (cwd / "runs" / "CartPole-v1").iterdir()
    return cwd, run_dir, result.stdout, result.stderr


def test_a_default_run_leaves_a_run_directory_and_says_where(default_run) -> None:
    cwd, run_dir, out, _ = default_run
    relative = run_dir.relative_to(cwd)
    assert out.startswith(f"run directory: {relative}\n")
    assert f"run directory: {relative} (metrics.csv" in out
    names = {path.name for path in run_dir.iterdir()}
    assert {"config.json", "metrics.csv", "trainlog.json", "trainlog.png", "metrics.png",
            "last.pt", "best.pt", "summary.json"} <= names
    assert ("tensorboard" in names) == TENSORBOARD
    assert ("TensorBoard: tensorboard --logdir" in out) == TENSORBOARD
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["num_envs"] == 4 and config["run"]["env_id"] == "CartPole-v1"
    assert config["command"][:2] == ["checked-rl", "train"]
    assert not [name for name in names if name.endswith(".tmp")]


def test_every_metric_per_update_and_every_evaluation_on_stderr(default_run) -> None:
    _, run_dir, _, err = default_run
    rows = _rows(run_dir / "metrics.csv")
    assert [row["update"] for row in rows] == ["1", "2", "3"]
    assert tuple(rows[0]) == CSV_COLUMNS
    for row in rows:
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                     "explained_variance", "learning_rate", "steps_per_s", "eval_mean",
                     "eval_std", "eval_min", "eval_max"):
            float(row[name])  # present and a number on every update (eval_every is 1)
        assert float(row["eval_min"]) <= float(row["eval_mean"]) <= float(row["eval_max"])
        spread = float(row["eval_max"]) - float(row["eval_min"])  # two episodes per evaluation
        assert float(row["eval_std"]) == pytest.approx(spread / 2)  # the population std
    assert float(rows[0]["learning_rate"]) > float(rows[2]["learning_rate"])  # annealed
    assert all(float(row["explained_variance"]) <= 1.0 for row in rows)
    assert len({row["explained_variance"] for row in rows}) == 3  # measured, not a constant
    assert sum(int(row["episodes"]) for row in rows) >= 1  # CartPole episodes end quickly
    lines = [line for line in err.splitlines() if line.startswith("update ")]
    assert len(lines) == 3 and lines[0].startswith("update 1/3, 32 steps: greedy return ")
    log = json.loads((run_dir / "trainlog.json").read_text())
    assert log["series"][0]["values"] == [float(row["eval_mean"]) for row in rows]


def test_best_holds_the_best_evaluation_and_last_the_end(default_run) -> None:
    _, run_dir, _, _ = default_run
    rows = _rows(run_dir / "metrics.csv")
    means = [float(row["eval_mean"]) for row in rows]
    best, last = load_checkpoint(run_dir / "best.pt"), load_checkpoint(run_dir / "last.pt")
    assert last["update"] == 3
    assert best["update"] == 1 + means.index(max(means))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_return"] == max(means) and summary["final_return"] == means[-1]


def test_resume_continues_into_the_same_run_directory(tmp_path: Path) -> None:
    first = run("train", *TINY, "--updates", "4", "--run-dir", "r", "--eval-every", "2",
                "--checkpoint-every", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # Pretend the run crashed after update 4 had been logged but before it was saved: the
    # checkpoint of update 2 is resumed, and the rows after it are replaced, not repeated.
    checkpoint = load_checkpoint(tmp_path / "r" / "last.pt")
    assert checkpoint["update"] == 4
    again = run("train", "--resume", "r", "--updates", "6", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("run directory: r\n")
    assert [row["update"] for row in _rows(tmp_path / "r" / "metrics.csv")] == [
        str(n) for n in range(1, 7)]
    assert load_checkpoint(tmp_path / "r" / "last.pt")["update"] == 6


def test_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path: Path) -> None:
    assert run("train", *TINY, "--updates", "2", "--run-dir", "r", cwd=tmp_path).returncode == 0
    metrics = tmp_path / "r" / "metrics.csv"
    rows = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*rows, rows[-1].replace("2,", "3,", 1)]) + "\n")
    assert run("train", "--resume", "r/last.pt", "--updates", "3", cwd=tmp_path).returncode == 0
    assert [row["update"] for row in _rows(metrics)] == ["1", "2", "3"]


def test_unwritable_places_are_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    for option, target, what in (("--run-dir", "file/sub", "the run directory"),
                                 ("--checkpoint", "file/sub/x.pt", "--checkpoint"),
                                 ("--log", "file/sub/x.json", "--log")):
        assert main(["train", *TINY, option, target]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("checked-rl train: error: ")
        assert what in captured.err and "file/sub is not writable" in captured.err
    assert not list(tmp_path.rglob("*.pt"))
    assert main(["train", *TINY, "--updates", "1", "--run-dir", "r", "--quiet"]) == 0
    assert main(["train", *TINY, "--run-dir", "r"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_several_seeds_in_parallel_match_single_runs(tmp_path: Path) -> None:
    result = run("train", *TINY, "--updates", "3", "--seeds", "0-1", "--jobs", "2",
                 "--run-dir", "many", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  seed  solved  steps to solve  s to solve  final return" in result.stdout
    summary = json.loads((tmp_path / "many" / "summary.json").read_text())
    assert [row["seed"] for row in summary["seeds"]] == [0, 1]
    assert summary["aggregate"]["seeds"] == 2
    assert (tmp_path / "many" / "seeds.png").read_bytes().startswith(b"\x89PNG")
    single = run("train", *TINY, "--updates", "3", "--seed", "1", "--run-dir", "one",
                 cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    alone = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["seeds"][1]["curve"] == alone["curve"]


def test_eval_prints_the_spread_and_a_json_line(default_run) -> None:
    cwd, run_dir, _, _ = default_run
    text = run("eval", str(run_dir / "last.pt"), "--episodes", "3", cwd=cwd)
    assert text.returncode == 0, text.stderr
    first, second = text.stdout.splitlines()
    assert first.startswith("average greedy return over 3 episodes: ") and "std" in first
    assert second.startswith("episode lengths: mean ")
    line = run("eval", str(run_dir / "last.pt"), "--episodes", "3", "--json", cwd=cwd)
    document = json.loads(line.stdout)
    returns = document["returns"]
    assert len(returns) == 3 and document["mean"] == pytest.approx(sum(returns) / 3)
    assert document["min"] == min(returns) and document["max"] == max(returns)
    assert all(1 <= n <= 30 for n in document["lengths"])


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


def test_an_exported_policy_runs_in_a_plain_gymnasium_loop_as_in_eval(default_run) -> None:
    cwd, run_dir, _, _ = default_run
    exported = run("export", str(run_dir / "best.pt"), "out/policy.pt", cwd=cwd)
    assert exported.returncode == 0, exported.stderr
    assert (cwd / "out" / "policy.onnx").is_file() == ONNX
    script = cwd / "plain.py"
    script.write_text(PLAIN_LOOP)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    plain = subprocess.run([sys.executable, str(script), "out/policy.pt", "7"], cwd=cwd,
                           capture_output=True, text=True, env=environment, timeout=120)
    assert plain.returncode == 0, plain.stderr
    evaluated = run("eval", str(run_dir / "best.pt"), "--kind", "gymnasium", "--seed", "7",
                    "--episodes", "3", "--max-episode-steps", "500", "--json", cwd=cwd)
    assert [float(x) for x in plain.stdout.split()] == json.loads(evaluated.stdout)["returns"]


def test_the_exported_policy_takes_one_observation_or_a_batch(default_run) -> None:
    import torch

    cwd, run_dir, _, _ = default_run
    assert run("export", str(run_dir / "last.pt"), "p.pt", "--no-onnx",
               cwd=cwd).returncode == 0
    policy = torch.jit.load(str(cwd / "p.pt"))
    batch = torch.randn(5, 4)
    actions = policy(batch)
    assert actions.shape == (5,) and actions.dtype == torch.int64
    assert [int(policy(row)) for row in batch] == actions.tolist()
    with pytest.raises(Exception, match="expected an observation of shape"):
        policy(torch.zeros(3))


@pytest.mark.skipif(not ONNX, reason="needs the onnx extra (onnx, onnxscript)")
def test_the_onnx_file_gives_the_torchscript_actions(default_run) -> None:
    import numpy as np
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator

    cwd, run_dir, _, _ = default_run
    assert run("export", str(run_dir / "last.pt"), "o.pt", cwd=cwd).returncode == 0
    batch = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    (actions,) = ReferenceEvaluator(onnx.load(str(cwd / "o.onnx"))).run(
        None, {"observation": batch})
    assert actions.tolist() == torch.jit.load(str(cwd / "o.pt"))(torch.from_numpy(batch)).tolist()


def test_module_ids_resolve_alike_and_a_checkpoint_imports_nothing_unasked(
    tmp_path: Path,
) -> None:
    (tmp_path / "my_envs.py").write_text(CORRIDOR)
    for env_id in ("my_envs:Corridor-v0", "my_envs:Corridor"):
        checked = run("check-env", env_id, "--steps", "20", cwd=tmp_path)
        assert checked.returncode == 0, checked.stderr
    trained = run("train", *TINY, "--updates", "1", "--kind", "gymnasium", "--env-id",
                  "my_envs:Corridor-v0", "--run-dir", "c", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    line = one_line_error(run("eval", "c/last.pt", cwd=tmp_path), "eval")
    assert "comes from module 'my_envs'" in line and "--env-id my_envs:Corridor-v0" in line
    for extra in (["--env-id", "my_envs:Corridor-v0"], ["--trust-checkpoint-env"]):
        assert run("eval", "c/last.pt", "--episodes", "2", *extra,
                   cwd=tmp_path).returncode == 0
    line = one_line_error(run("train", "--resume", "c", "--updates", "2", cwd=tmp_path),
                          "train")
    assert "--trust-checkpoint-env" in line
    assert run("train", "--resume", "c", "--updates", "2", "--trust-checkpoint-env",
               cwd=tmp_path).returncode == 0
    assert run("export", "c/last.pt", "c.pt", "--no-onnx", cwd=tmp_path).returncode == 0
    line = one_line_error(run("eval", "c/last.pt", "--env-id", "CartPole-v1", "--kind",
                              "gymnasium", cwd=tmp_path), "eval")
    assert "its network takes observations of shape (1,) and 2 actions" in line


def test_a_module_id_that_names_nothing_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "my_envs.py").write_text(CORRIDOR)
    for command in (["train", "--kind", "gymnasium", "--env-id"], ["check-env"]):
        line = one_line_error(run(*command, "my_envs:Nothing", cwd=tmp_path), command[0])
        assert "neither registers the Gymnasium id 'Nothing'" in line


@pytest.mark.skipif(PYGAME, reason="checks the message shown without pygame")
def test_recording_without_pygame_is_one_line(default_run) -> None:
    cwd, run_dir, _, _ = default_run
    line = one_line_error(run("eval", str(run_dir / "last.pt"), "--record", "e.gif",
                              cwd=cwd), "eval")
    assert "needs pygame" in line and "checked-rl[render]" in line


@pytest.mark.skipif(not PYGAME, reason="needs the render extra (pygame)")
def test_recording_writes_a_gif_of_the_greedy_episode(default_run) -> None:
    cwd, run_dir, _, _ = default_run
    result = run("eval", str(run_dir / "last.pt"), "--render", "rgb_array", "--record",
                 "e.gif", "--episodes", "1", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (cwd / "e.gif").read_bytes().startswith(b"GIF8")
    assert document["recorded"]["length"] == document["lengths"][0]

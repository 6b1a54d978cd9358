"""Box actions from the command line, in real processes: `checked-rl train` on Pendulum-v1
through the in-process and the subprocess Gymnasium kinds (and a two-dimensional box from a
user's module), `checked-rl eval` of the checkpoints, and the exported greedy actor in a
plain Gymnasium loop."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checked_rl.runtime.ppo.checkpoint import load_checkpoint
from tests.runs_helpers import TINY, one_line_error, run

pytestmark = pytest.mark.timeout(900)  # fresh interpreters on a loaded machine: a safety net

REACH = '''
import gymnasium as gym
import numpy as np


class Reach(gym.Env):
    """Move a point in the plane towards the origin; actions are 2-D steps in [-1, 1]^2."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.point = self.np_random.uniform(-3.0, 3.0, 2).astype(np.float32)
        return self.point.copy(), {}

    def step(self, action):
        self.point = np.clip(self.point + np.clip(action, -1.0, 1.0), -10.0, 10.0)
        return self.point.copy(), -float(np.linalg.norm(self.point)), False, False, {}


gym.register(id="Reach-v0", entry_point=Reach, max_episode_steps=10)
'''


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two updates of `checked-rl train --env-id Pendulum-v1 --kind gymnasium`: (cwd, run)."""
    cwd = tmp_path_factory.mktemp("pendulum")
    # Pendulum's returns are <= 0: a solved return of 1 is never reached, so both updates run.
    result = run("train", *TINY, "--updates", "2", "--solved-return", "1", "--env-id",
                 "Pendulum-v1", "--kind", "gymnasium", "--run-dir", "p", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd, cwd / "p"


def test_pendulum_trains_in_process_and_writes_its_log_and_checkpoints(pendulum_run) -> None:
    _, run_dir = pendulum_run
    names = {path.name for path in run_dir.iterdir()}
    assert {"trainlog.json", "metrics.csv", "last.pt", "best.pt"} <= names
    log = json.loads((run_dir / "trainlog.json").read_text())
    assert len(log["series"][0]["values"]) == 2
    saved = load_checkpoint(run_dir / "last.pt")
    assert saved["update"] == 2 and saved["network"]["head"] == "gaussian"
    assert saved["network"]["action_shape"] == [1]


def test_eval_runs_a_pendulum_checkpoint(pendulum_run) -> None:
    cwd, run_dir = pendulum_run
    evaluated = run("eval", str(run_dir / "best.pt"), "--episodes", "2", "--json", cwd=cwd)
    assert evaluated.returncode == 0, evaluated.stderr
    document = json.loads(evaluated.stdout)
    assert document["env_id"] == "Pendulum-v1" and document["lengths"] == [30, 30]
    line = one_line_error(run("eval", str(run_dir / "best.pt"), "--env-id", "CartPole-v1",
                              cwd=cwd), "eval")
    assert "takes observations of shape (3,) and Box actions of shape (1,)" in line


PLAIN_LOOP = """
import sys, gymnasium, torch
policy = torch.jit.load(sys.argv[1])
for seed in range(int(sys.argv[2]), int(sys.argv[2]) + 2):
    env, total = gymnasium.make("Pendulum-v1"), 0.0
    observation, _ = env.reset(seed=seed)
    for _ in range(30):
        action = policy(torch.as_tensor(observation)).numpy()  # Pendulum clips it itself
        observation, reward, terminated, truncated, _ = env.step(action)
        total += reward
    print(total)
"""


def test_the_exported_pendulum_policy_runs_in_a_plain_gymnasium_loop_as_in_eval(
    pendulum_run,
) -> None:
    import torch

    cwd, run_dir = pendulum_run
    exported = run("export", str(run_dir / "best.pt"), "policy.pt", "--no-onnx", cwd=cwd)
    assert exported.returncode == 0, exported.stderr
    policy = torch.jit.load(str(cwd / "policy.pt"))
    batch = torch.randn(5, 3)
    assert policy(batch).shape == (5, 1) and policy(batch[0]).shape == (1,)
    script = cwd / "plain.py"
    script.write_text(PLAIN_LOOP)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    plain = subprocess.run([sys.executable, str(script), "policy.pt", "7"], cwd=cwd,
                           capture_output=True, text=True, env=environment, timeout=120)
    assert plain.returncode == 0, plain.stderr
    evaluated = run("eval", str(run_dir / "best.pt"), "--seed", "7", "--episodes", "2",
                    "--max-episode-steps", "30", "--json", cwd=cwd)
    want = json.loads(evaluated.stdout)["returns"]
    assert [float(x) for x in plain.stdout.split()] == pytest.approx(want, rel=1e-6)


def test_box_actions_train_through_the_bridge_and_eval_runs_the_checkpoint(
    tmp_path: Path,
) -> None:
    (tmp_path / "my_envs.py").write_text(REACH)
    trained = run("train", *TINY, "--updates", "2", "--solved-return", "1", "--env-id",
                  "Pendulum-v1", "--kind", "gymnasium-subprocess", "--run-dir", "p", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert load_checkpoint(tmp_path / "p" / "last.pt")["update"] == 2
    trained = run("train", *TINY, "--updates", "2", "--env-id", "my_envs:Reach-v0", "--kind",
                  "gymnasium-subprocess", "--run-dir", "r", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert load_checkpoint(tmp_path / "r" / "last.pt")["network"]["action_shape"] == [2]
    for run_dir, extra in (("p", []), ("r", ["--trust-checkpoint-env"])):
        evaluated = run("eval", f"{run_dir}/last.pt", "--episodes", "2", "--json", *extra,
                        cwd=tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr
        assert json.loads(evaluated.stdout)["kind"] == "gymnasium-subprocess"

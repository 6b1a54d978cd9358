"""Helpers of the training-run tests: the command in a real subprocess, a tiny config, and
environment modules written into a test's directory."""

import os
import subprocess
import sys
from pathlib import Path

COMMAND = [sys.executable, "-m", "checked_rl.runtime.cli"]
TINY = ["--num-envs", "4", "--horizon", "8", "--hidden", "8", "--eval-episodes", "2",
        "--eval-max-episode-steps", "30"]
REPOSITORY = Path(__file__).resolve().parent.parent
SAFETY_TIMEOUT = 120.0
"""Seconds a subprocess may take at most (a safety net, not an assertion about speed)."""

CORRIDOR = '''
import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right (action 1) to the end of a corridor of 5 cells; reward 1 per step right."""

    observation_space = gym.spaces.Box(0.0, 5.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.position = max(0, self.position + (1 if action == 1 else -1))
        done = self.position >= 5
        return (np.array([float(self.position)], np.float32), float(action == 1), done, False,
                {})


gym.register(id="Corridor-v0", entry_point=Corridor, max_episode_steps=20)
'''
"""`my_envs.py`: an environment module as a user writes one, registering an id and
providing a class."""


def run(*args: str, cwd: Path, timeout: float = SAFETY_TIMEOUT,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`checked-rl ARGS` in a fresh interpreter in `cwd` (stdin closed, no terminal)."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), **(env or {})}
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The single error line of a run that exited 2, checked to have no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"checked-rl {command}: error: "), lines[0]
    return lines[0]

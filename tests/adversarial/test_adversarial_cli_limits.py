"""Hostile command lines for `train` and `eval`, each in a real process: sizes that cannot fit,
seeds outside [0, 2^64), paths that name no file, environment ids that name nothing or a module
that fails to import, an environment that breaks its contract at reset. Each must end in one
line with exit code 2, without a traceback, before anything large is allocated."""

from pathlib import Path

import pytest

from tests.runs_helpers import TINY, one_line_error, run

pytestmark = pytest.mark.timeout(900)  # fresh interpreters on a loaded machine

HUGE = "1000000000"

CASES = {
    "num-envs": (["train", "--num-envs", HUGE], ["--num-envs 1000000000: needs about",
                                                 "more than the limit of"]),
    "hidden": (["train", "--hidden", HUGE], ["--hidden 1000000000: needs about"]),
    "eval-episodes": (["train", "--eval-episodes", HUGE],
                      ["--eval-episodes 1000000000: needs about"]),
    "seed too big": (["train", "--seed", str(2**64)], ["seed must lie in [0, 2^64)"]),
    "seed negative": (["train", "--seed", "-1"], ["seed must lie in [0, 2^64)"]),
    "seed near 2^64": (["train", "--seed", str(2**64 - 5)], ["too close to 2^64"]),
    "empty log": (["train", "--log", ""], ["--log must name a file, got ''"]),
    "empty checkpoint": (["train", "--checkpoint", ""], ["--checkpoint must name a file"]),
    "directory checkpoint": (["train", "--checkpoint", "."], ["--checkpoint must name a file"]),
    "empty run dir": (["train", "--run-dir", ""], ["--run-dir must name a directory"]),
    "empty env id": (["train", "--env-id", ""], ["--env-id must name an environment"]),
    "unknown env id": (["train", "--kind", "gymnasium", "--env-id", "Nope-v9"],
                       ["cannot train on 'Nope-v9'"]),
    "module that raises": (["train", "--env-id", "raises:Env-v0"],
                           ["module 'raises' failed to import: RuntimeError: boom"]),
    "module that exits": (["train", "--env-id", "exits:Env-v0"],
                          ["module 'exits' failed to import: SystemExit: 3"]),
    "module with a syntax error": (["train", "--env-id", "broken:Env-v0"],
                                   ["module 'broken' failed to import: SyntaxError"]),
    "seeds out of range": (["train", "--seeds", f"0-{2**64}"], ["within [0, 2^64)"]),
    "seeds garbage": (["train", "--seeds", "a-b"], ["--seeds: expected a list"]),
    "jobs zero": (["train", "--seeds", "0-1", "--jobs", "0"], ["--jobs must be a positive"]),
}

MODULES = {
    "raises.py": "raise RuntimeError('boom')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "broken.py": "def (:\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_train_options_are_one_line(case: str, tmp_path: Path) -> None:
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    args, fragments = CASES[case]
    line = one_line_error(run(*args, cwd=tmp_path), args[0])
    for fragment in fragments:
        assert fragment in line, line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.pt"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("eval")
    assert run("train", *TINY, "--updates", "1", "--run-dir", "r", cwd=cwd).returncode == 0
    return cwd / "r" / "last.pt"


@pytest.mark.parametrize(("args", "fragment"), [
    (["--episodes", HUGE], "--episodes 1000000000: needs about"),
    (["--seed", str(2**64)], "--seed must lie in [0, 2^64 - E]"),
    (["--seed", "-3"], "--seed must lie in [0, 2^64 - E]"),
    (["--record", ""], "--record must name a file"),
    (["--record", "x.mp4"], "only .gif files are written"),
    (["--render", "rgb_array"], "give --record OUT.gif"),
])
def test_hostile_eval_options_are_one_line(checkpoint: Path, args: list[str],
                                           fragment: str) -> None:
    line = one_line_error(run("eval", str(checkpoint), *args, cwd=checkpoint.parent), "eval")
    assert fragment in line, line


BAD_RESET = '''
import gymnasium as gym
import numpy as np


class BadReset(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(5, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 1.0, False, False, {}
'''


def test_a_reset_violation_in_train_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad_reset.py").write_text(BAD_RESET)
    result = run("train", *TINY, "--kind", "gymnasium", "--env-id", "bad_reset:BadReset",
                 "--run-dir", "r", cwd=tmp_path,
                 env={"PYTHONWARNINGS": "ignore::UserWarning"})  # Gymnasium's own checker
    line = one_line_error(result, "train")
    assert "bad_reset:BadReset" in line and "shape" in line

"""The pytest plugin as a user's project meets it: `python -m pytest --checked-rl-env
module:Class` in a fresh folder, in a subprocess.

The plugin is found through its `pytest11` entry point where checked-rl is installed with it
(`pip install checked-rl`, or `pip install -e .` here); in a checkout whose installed metadata
predates the entry point, or with plugin autoloading disabled, the test loads it with
`-p checked_rl.properties.plugin`, the same module. Either way the real pytest runs the real
properties on real environments written into the folder.
"""

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COMMAND_TIMEOUT = 300

PROJECT = textwrap.dedent(
    '''
    import gymnasium as gym
    import numpy as np


    class Drift(gym.Env):
        """A correct environment: a point nudged by the action, episodes of 7 steps."""

        observation_space = gym.spaces.Box(-10.0, 10.0, (3,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            self.x = self.np_random.uniform(-1, 1, 3).astype(np.float32)
            return self.x.copy(), {}

        def step(self, action):
            self.t += 1
            self.x = (self.x + (0.1 if action else -0.1)).astype(np.float32)
            return self.x.copy(), 1.0, False, self.t >= 7, {}


    class IgnoresSeed(Drift):
        """Resets from fresh entropy whatever the seed."""

        def reset(self, *, seed=None, options=None):
            return super().reset(seed=None, options=options)


    class Aliasing(Drift):
        """Returns one buffer that every step overwrites."""

        def step(self, action):
            _, *rest = super().step(action)
            self.buffer = getattr(self, "buffer", np.zeros(3, np.float32))
            self.buffer[:] = self.x
            return self.buffer, *rest
    '''
)

ENV_PROPERTIES = ("contract", "session-invariants", "seeding", "distinct-seeds", "aliasing")


def plugin_arguments() -> list[str]:
    """`[]` where pytest loads the plugin from its entry point, else `-p` and the module."""
    installed = any(
        entry.value == "checked_rl.properties.plugin"
        for entry in importlib.metadata.entry_points(group="pytest11")
    )
    if installed and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    return ["-p", "checked_rl.properties.plugin"]


def run_pytest(folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugin_arguments(), "-p", "no:cacheprovider",
         *arguments],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "my_envs.py").write_text(PROJECT)
    return tmp_path


def test_a_correct_env_passes_and_a_seed_ignoring_or_aliasing_one_fails(project: Path) -> None:
    completed = run_pytest(
        project, "-rA", "--checked-rl-examples", "8",
        "--checked-rl-env", "my_envs:Drift",
        "--checked-rl-env", "my_envs:IgnoresSeed",
        "--checked-rl-env", "my_envs:Aliasing",
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    for prop in ENV_PROPERTIES:
        assert f"PASSED checked-rl::{prop}[my_envs:Drift]" in output, output
    assert "FAILED checked-rl::seeding[my_envs:IgnoresSeed]" in output
    assert "FAILED checked-rl::aliasing[my_envs:Aliasing]" in output
    assert "PASSED checked-rl::aliasing[my_envs:IgnoresSeed]" in output
    assert "reset(seed=" in output and "again gave another episode" in output
    assert "was changed later" in output
    assert "Failing test case" in output or "Falsifying example" in output  # Hypothesis' shrunk
    assert "2 failed, 13 passed" in output


def test_a_reference_and_a_gae_are_checked(project: Path) -> None:
    completed = run_pytest(
        project, "-rA", "--checked-rl-examples", "5",
        "--checked-rl-env", "CartPole-v1=CartPole-v1",
        "--checked-rl-gae", "checked_rl.runtime.returns:gae",
        "-k", "reference or gae-matches",
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "PASSED checked-rl::reference[CartPole-v1=CartPole-v1]" in output
    assert "PASSED checked-rl::gae-matches-spec-float32[checked_rl.runtime.returns:gae]" in output


def test_help_lists_the_options_and_a_bad_name_is_one_line(project: Path) -> None:
    helped = run_pytest(project, "--help")
    for option in ("--checked-rl-env", "--checked-rl-gae", "--checked-rl-examples"):
        assert option in helped.stdout
    completed = run_pytest(project, "--checked-rl-env", "my_envs:Nothing")
    assert completed.returncode == 4  # pytest's usage error
    assert "Traceback" not in completed.stderr
    assert "--checked-rl-env my_envs:Nothing: ValueError" in completed.stderr

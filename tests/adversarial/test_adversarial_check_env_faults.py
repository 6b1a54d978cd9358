"""`check-env` against environments that fail at reset, exit the process or raise on close.

Each case is a real `gymnasium.Env` written into a fresh folder and checked by the real command
in a subprocess, named as `module:Class`: the verdict must be a listed violation with exit code
2 and one error line, never a traceback and never a success.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COMMAND_TIMEOUT = 90

ENVIRONMENTS = textwrap.dedent(
    '''
    import sys

    import gymnasium as gym
    import numpy as np


    class Clean(gym.Env):
        """A point that drifts with the action; episodes of 7 steps."""

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
            self.fault_at_step()
            return self.x.copy(), 1.0, False, self.t >= 7, {}

        def fault_at_step(self):
            pass


    class WrongShapeAtReset(Clean):
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros(5, np.float32), {}


    class NanAtReset(Clean):
        def reset(self, *, seed=None, options=None):
            observation, info = super().reset(seed=seed)
            observation[1] = np.nan
            return observation, info


    class RaisesAtReset(Clean):
        def reset(self, *, seed=None, options=None):
            raise RuntimeError("the simulator did not start")


    class ExitsInStep(Clean):
        def fault_at_step(self):
            if self.t == 3:
                sys.exit(0)


    class ExitsInReset(Clean):
        def reset(self, *, seed=None, options=None):
            sys.exit(0)


    class Stop(BaseException):
        pass


    class RaisesBaseExceptionInStep(Clean):
        def fault_at_step(self):
            raise Stop("not an Exception")


    class RaisesInClose(Clean):
        def close(self):
            raise RuntimeError("the simulator crashed on shutdown")


    class ExitsInInit(Clean):
        def __init__(self):
            sys.exit(0)


    class RaisesInInit(Clean):
        def __init__(self):
            raise RuntimeError("no licence for the simulator")
    '''
)


def check_env(folder: Path, name: str, *options: str) -> subprocess.CompletedProcess:
    """Run `checked-rl check-env my_envs:NAME` in `folder`."""
    command = [sys.executable, "-m", "checked_rl.runtime.cli", "check-env", f"my_envs:{name}"]
    return subprocess.run(
        [*command, "--steps", "20", "--num-envs", "2", *options],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("envs")
    (path / "my_envs.py").write_text(ENVIRONMENTS)
    return path


def assert_violation(completed: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, one error line (the last), no traceback, and `fragments` in the listed violations."""
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    lines = completed.stderr.strip().splitlines()  # Gymnasium's checker may warn before
    errors = [line for line in lines if line.startswith("checked-rl check-env: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    listed = completed.stdout.split("violations:", 1)[1]
    for fragment in fragments:
        assert fragment in listed, completed.stdout


@pytest.mark.parametrize("vector", [[], ["--vector"]], ids=["session", "vector"])
def test_a_clean_class_passes(folder: Path, vector: list[str]) -> None:
    completed = check_env(folder, "Clean", *vector)
    assert completed.returncode == 0, completed.stderr
    assert "violations: 0" in completed.stdout
    kind = "gymnasium-vector" if vector else "gymnasium,"
    assert f"check-env my_envs:Clean ({kind}" in completed.stdout


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("WrongShapeAtReset", "has shape (5,), expected (3,)"),
        ("NanAtReset", "is not finite"),
        ("RaisesAtReset", "RuntimeError: the simulator did not start"),
    ],
)
def test_a_violation_at_reset_is_listed_with_its_count(
    folder: Path, name: str, fragment: str
) -> None:
    completed = check_env(folder, name)
    assert_violation(completed, "reset: ", fragment, "(x10)")
    assert "steps: 0" in completed.stdout


@pytest.mark.parametrize("vector", [[], ["--vector"]], ids=["session", "vector"])
def test_an_environment_calling_sys_exit_in_step_fails_the_check(
    folder: Path, vector: list[str]
) -> None:
    completed = check_env(folder, "ExitsInStep", *vector)
    # in-process sessions name the environment and the step; the vector kind the step
    assert_violation(
        completed, "step 2: ", "SystemExit", "an environment must not exit the process"
    )


def test_an_environment_calling_sys_exit_in_reset_fails_the_check(folder: Path) -> None:
    assert_violation(
        check_env(folder, "ExitsInReset"),
        "reset: ExitsInReset environment 0 raised in reset: SystemExit: 0; "
        "an environment must not exit the process",
    )


def test_any_base_exception_from_the_environment_is_a_violation(folder: Path) -> None:
    completed = check_env(folder, "RaisesBaseExceptionInStep")
    assert_violation(
        completed,
        "step 0: RaisesBaseExceptionInStep environment 0 raised in step (action 0) at step 0: "
        "Stop: not an Exception",
    )


def test_a_raising_close_is_reported_after_the_whole_report(folder: Path) -> None:
    completed = check_env(folder, "RaisesInClose")
    assert_violation(
        completed,
        "close: RaisesInClose: close() raised in 2 environment(s), first in environment 0: "
        "RuntimeError: the simulator crashed",
    )
    assert "steps: 20, transitions checked: 40" in completed.stdout
    assert "violations: 1" in completed.stdout


def test_a_class_is_refused_in_one_line_for_bridge_servers(folder: Path) -> None:
    completed = check_env(folder, "Clean", "--kind", "gymnasium-subprocess")
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "module:Class runs in this process only" in completed.stderr


@pytest.mark.parametrize(
    ("name", "raised"),
    [("ExitsInInit", "SystemExit: 0"), ("RaisesInInit", "RuntimeError: no licence")],
)
@pytest.mark.parametrize("vector", [(), ("--vector", "--vectorization-mode", "sync")])
def test_an_environment_that_fails_while_being_made_is_one_line_never_a_pass(
    folder: Path, name: str, raised: str, vector: tuple[str, ...]
) -> None:
    completed = check_env(folder, name, *vector)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr and completed.stdout == ""
    assert completed.stderr.strip().splitlines()[-1] == (
        f"checked-rl check-env: error: cannot check 'my_envs:{name}': EnvironmentMakeError: "
        f"my_envs:{name}: making the environment raised {raised}"
        + (" for the simulator" if name == "RaisesInInit" else "")
    )

"""`checked-rl check-env`: clean environments pass, faulty ones fail with one line on stderr and
no traceback, in this process and through the bridge.

The main cases run the real command in a subprocess; the remaining error cases call
`runtime.cli.main` in this process (the same code path, without another PyTorch start-up).
"""

import subprocess
import sys

import pytest

from checked_rl.runtime.bridge import BridgeError
from checked_rl.runtime.cli import main, one_line
from checked_rl.runtime.cli.check_env import check_session
from checked_rl.runtime.sessions import make_session

COMMAND_TIMEOUT = 60
STEPS = 60
NUM_ENVS = 3


def check_env(*arguments: str) -> subprocess.CompletedProcess:
    """Run `python -m checked_rl.runtime.cli check-env ARGUMENTS`; return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "checked_rl.runtime.cli", "check-env", *arguments],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def check_env_here(capsys: pytest.CaptureFixture, *arguments: str) -> subprocess.CompletedProcess:
    """Run `main(["check-env", *arguments])` here; return what the command would have shown."""
    try:
        code = main(["check-env", *arguments])
    except SystemExit as stop:  # a bad command line, reported by the parser
        code = stop.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(arguments, code, captured.out, captured.err)


def assert_one_line_error(completed: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2 with one `error:` line on stderr, holding `fragments`, no traceback."""
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr + completed.stdout
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("checked-rl check-env: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "mode", [[], ["--kind", "gymnasium-subprocess", "--num-servers", "2"]], ids=["in", "sub"]
)
def test_cartpole_is_clean(mode):
    completed = check_env(
        "CartPole-v1", "--steps", "150", "--num-envs", str(NUM_ENVS), "--seed", "4", *mode
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert f"transitions checked: {150 * NUM_ENVS}" in completed.stdout
    assert "violations: 0" in completed.stdout
    episodes = int(completed.stdout.split("episodes finished: ")[1].split()[0])
    assert episodes > 0


@pytest.mark.parametrize("mode", [[], ["--kind", "gymnasium-subprocess"]], ids=["in", "sub"])
def test_a_faulty_environment_fails_with_one_line(mode):
    completed = check_env("tests.faulty_envs:OutOfBox-v0", "--steps", "8", "--num-envs", "2", *mode)
    assert_one_line_error(
        completed,
        "tests.faulty_envs:OutOfBox-v0: 2 violation(s) in 8 steps",
        "first: contract violation: next_observation[env 0, step 2] entry 0 = 100.0",
    )
    assert "violations: 2" in completed.stdout
    # The same violation found again after each reset is listed once, with its count.
    assert completed.stdout.count("contract violation:") == 1
    assert "entry 0 = 100.0" in completed.stdout and "(x2)" in completed.stdout


def test_a_crashing_server_is_one_line_with_its_exit_code_and_stderr():
    completed = check_env(
        "tests.faulty_envs:ExitMidEpisode-v0", "--kind", "gymnasium-subprocess", "--steps", "5"
    )
    assert_one_line_error(completed, "exit code 7", "faulty env: giving up at step 3")


def test_a_hanging_server_is_one_line_within_the_timeout(capsys):
    completed = check_env_here(
        capsys,
        "tests.faulty_envs:SleepForever-v0",
        "--kind",
        "gymnasium-subprocess",
        "--steps",
        "5",
        "--timeout",
        "1",
    )
    assert_one_line_error(completed, "did not answer 'step' within 1 s")


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["NoSuchEnv-v0"], "NameNotFound"),
        (["no_such_module:Env-v0"], "No module named 'no_such_module'"),
        (
            ["FrozenLake-v1", "--kind", "gymnasium-subprocess"],
            "expected a gymnasium.spaces.Box observation space",
        ),
        (["CartPole-v1", "--steps", "0"], "expected --steps >= 1"),
        (["CartPole-v1", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
        (["CartPole-v1", "--step", "5"], "unrecognized arguments: --step 5"),
        (["CartPole-v1", "--kind", "torch"], "argument --kind: invalid choice: 'torch'"),
        ([], "the following arguments are required: ENV_ID"),
    ],
)
def test_unusable_input_is_one_line(capsys, arguments, fragment):
    assert_one_line_error(check_env_here(capsys, *arguments), fragment)


def test_check_session_counts_steps_episodes_and_violations():
    with make_session(
        "gymnasium",
        "tests.faulty_envs:NanAtStep-v0",
        num_envs=2,
        make_kwargs={"episode_length": 2, "fault_step": 5},
    ) as session:
        report = check_session(session, steps=10, seed=0)
    assert (report.steps, report.transitions, report.episodes) == (10, 20, 10)
    assert report.violations == []
    with make_session(
        "gymnasium",
        "tests.faulty_envs:NanAtStep-v0",
        num_envs=2,
        make_kwargs={"fault_step": 2, "fault_seeds": [1]},
    ) as session:
        report = check_session(session, steps=5, seed=0)
    # Steps 1 and 3 fail (the unseeded reset keeps environment 1 faulty), each followed by a reset.
    assert (
        report.violations
        == ["contract violation: next_observation[env 1, step 1] entry 1 = nan is not finite"] * 2
    )
    assert (report.steps, report.transitions) == (5, 2 * 3)


def test_one_line_is_the_type_and_the_first_line_or_the_bridge_summary():
    assert one_line(ValueError("first line\nsecond line")) == "ValueError: first line"
    assert one_line(EOFError()) == "EOFError: EOFError"
    crashed = BridgeError("bridge: server 0 exited", exit_code=7, stderr_tail=("early", "last"))
    assert one_line(crashed) == "bridge: server 0 exited (server stderr: last)"
    assert one_line(BridgeError("bridge: server 0 hung")) == "bridge: server 0 hung"

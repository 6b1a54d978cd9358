"""`checked-rl train` and `checked-rl eval` as real subprocesses: runs, bad input, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from checked_rl.runtime.cli import main
from checked_rl.runtime.ppo.checkpoint import load_checkpoint

COMMAND = [sys.executable, "-m", "checked_rl.runtime.cli"]
TINY = ["--num-envs", "2", "--horizon", "8", "--hidden", "8", "--eval-episodes", "2",
        "--eval-max-steps", "20", "--quiet"]
REPOSITORY = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0
"""Seconds a subprocess may take to get going (a safety net, not an assertion about speed)."""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=STARTUP_TIMEOUT)


def test_train_then_eval(tmp_path: Path) -> None:
    log, checkpoint = tmp_path / "rl" / "log.json", tmp_path / "rl" / "run.pt"
    trained = _run("train", *TINY, "--updates", "2", "--eval-every", "1", "--log", str(log),
                   "--checkpoint", str(checkpoint), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    document = json.loads(log.read_text())
    assert document["steps"] == [16, 32] and len(document["series"][0]["values"]) == 2
    assert "preset=default" in document["notes"] and "num_envs=2" in document["notes"]
    assert log.with_suffix(".png").is_file()
    evaluated = _run("eval", str(checkpoint), "--episodes", "3", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith("average greedy return over 3 episodes: ")
    assert 1.0 <= float(evaluated.stdout.split(": ")[1]) <= 500.0


BAD_INPUT = {
    "negative size": (["train", "--num-envs", "-1"], "num_envs must be a positive integer"),
    "unknown kind": (["train", "--kind", "atari"], "--kind must be one of spec, torch"),
    "not a number": (["train", "--updates", "many"], "argument --updates: invalid int value"),
    "unknown preset": (["train", "--preset", "fastest"], "unknown preset 'fastest'"),
    "uneven minibatches": (["train", "--minibatches", "3"], "minibatches must divide"),
    "missing checkpoint": (["eval", "absent.pt"], "checkpoint absent.pt does not exist"),
    "no episodes": (["eval", "absent.pt", "--episodes", "0"], "--episodes must be a positive"),
}
if not torch.cuda.is_available():
    BAD_INPUT["cuda without a GPU"] = (["train", "--device", "cuda"], "no CUDA GPU")
IN_A_SUBPROCESS = ("not a number", "negative size", "missing checkpoint")
"""One case per route an error takes (argparse, config checks, handler); each subprocess costs
a fresh interpreter, so the other cases run the same `main` in this process."""


def _assert_one_line_error(command: str, message: str, stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert message in lines[0] and lines[0].startswith(f"checked-rl {command}")


@pytest.mark.parametrize("case", IN_A_SUBPROCESS)
def test_bad_input_in_a_subprocess_is_one_line_without_traceback(
    case: str, tmp_path: Path
) -> None:
    args, message = BAD_INPUT[case]
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2
    _assert_one_line_error(args[0], message, result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize("case", sorted(set(BAD_INPUT) - set(IN_A_SUBPROCESS)))
def test_bad_input_is_one_line(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    args, message = BAD_INPUT[case]
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    captured = capsys.readouterr()
    _assert_one_line_error(args[0], message, captured.err)
    assert captured.out == ""


def test_ctrl_c_saves_the_completed_updates_and_exits_130(tmp_path: Path) -> None:
    log, checkpoint = tmp_path / "log.json", tmp_path / "run.pt"
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    process = subprocess.Popen(
        [*COMMAND, "train", *TINY, "--updates", "100000", "--eval-every", "1",
         "--checkpoint-every", "100000", "--log", str(log), "--checkpoint", str(checkpoint)],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not log.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.exists(), "training never wrote its first evaluation"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=STARTUP_TIMEOUT)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    saved = load_checkpoint(checkpoint)
    assert saved["update"] >= 1
    document = json.loads(log.read_text())
    assert document["steps"][-1] == saved["env_steps"]
    assert log.with_suffix(".png").is_file()

"""Ctrl-C, hard: two SIGINTs a few milliseconds apart. The first stops the run, which then saves
its last completed update (a large network, so the save takes a while); the second lands during
that save. The run must exit 130 without a traceback, finish the save (the checkpoint holds at
least the updates already reported), and leave no temporary file."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from checked_rl.runtime.ppo.checkpoint import load_checkpoint
from tests.runs_helpers import COMMAND, REPOSITORY

SAFETY_TIMEOUT = 300.0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("gap", [0.002, 0.005, 0.02])
def test_two_quick_sigints_during_saves_leave_the_last_checkpoint(tmp_path: Path,
                                                                  gap: float) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    process = subprocess.Popen(
        [*COMMAND, "train", "--num-envs", "4", "--horizon", "8", "--hidden", "1024",
         "--eval-episodes", "1", "--eval-max-episode-steps", "10", "--updates", "100000",
         "--solved-return", "1e9", "--checkpoint-every", "100000", "--run-dir", "r",
         "--checkpoint", "copy/c.pt"],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + SAFETY_TIMEOUT
    seen = 0
    while seen < 3 and time.monotonic() < deadline:  # a few saves have happened
        line = process.stderr.readline()
        seen += line.startswith("update ")
    process.send_signal(signal.SIGINT)
    time.sleep(gap)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=SAFETY_TIMEOUT)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted" in err
    for path in (tmp_path / "r" / "last.pt", tmp_path / "copy" / "c.pt"):
        assert load_checkpoint(path)["update"] >= seen  # the save after the first SIGINT
    leftovers = [p.name for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []



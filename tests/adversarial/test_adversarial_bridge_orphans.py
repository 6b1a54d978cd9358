"""No orphan, however the client ends: real clients, real servers, real signals.

The environment `Spawner` starts a child and a grandchild in every server. A client process is
killed (SIGKILL, SIGTERM, SIGINT) or exits abruptly, idle or while its servers are inside a
step that never returns; afterwards no server, child or grandchild may remain (the `outcome`
fixture hunts every process tagged with the client's pid and fails the case if one survives).
In this process, every way a session ends (close, timeout, crash, forgotten close) must end the
servers' process groups too.
"""

import gc
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from checked_rl.runtime.sessions import make_session
from checked_rl.runtime.sessions.subprocess_envs import BridgeError
from tests.adversarial.conftest import tagged_processes

NUM_SERVERS = 2
PROCESSES_PER_SERVER = 1 + 3
"""The server, its `sleep` child, its `sh` child and that one's `sleep` grandchild."""

STARTUP_WAIT = 120.0
"""Seconds a client may take to import, start its servers and reach the point of the case."""

CLIENT = """
import json, sys, time
import torch
from checked_rl.runtime.sessions import make_session
import tests.faulty_envs
session = make_session(
    "gymnasium-subprocess", "tests.faulty_envs:Spawner-v0", num_envs=2, num_servers=2,
    timeout=600, seed=0, make_kwargs=json.loads(sys.argv[1]),
)
print("ready", flush=True)
if sys.argv[2] == "step":
    session.step_checked(torch.zeros(2, dtype=torch.int64))
elif sys.argv[2] == "exit":
    import os
    sys.stdin.readline()
    os._exit(0)
time.sleep(600)
"""


def start_client(tmp_path, where: str) -> tuple[subprocess.Popen, object]:
    """A client whose servers are, once this returns, idle or inside a step that hangs."""
    marker = tmp_path / "hanging"
    kwargs = {"hang": True, "marker": str(marker), "fault_step": 1}
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, json.dumps(kwargs), where],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + STARTUP_WAIT
    if where == "step":
        while time.monotonic() < deadline and (
            not marker.exists() or len(marker.read_text().split()) < NUM_SERVERS
        ):
            time.sleep(0.05)
        assert len(marker.read_text().split()) == NUM_SERVERS, "servers never entered the step"
    return client, deadline


KILLS = [
    ("SIGKILL mid-step", "step", signal.SIGKILL),
    ("SIGKILL idle", "idle", signal.SIGKILL),
    ("SIGTERM mid-step", "step", signal.SIGTERM),
    ("SIGINT mid-step", "step", signal.SIGINT),
    ("os._exit", "exit", None),
]
SLOW = {"SIGKILL idle", "SIGTERM mid-step", "SIGINT mid-step", "os._exit"}


@pytest.mark.parametrize(
    ("where", "signum"),
    [
        pytest.param(*case[1:], marks=[pytest.mark.slow] if case[0] in SLOW else [], id=case[0])
        for case in KILLS
    ],
)
def test_servers_and_their_children_end_with_their_client(tmp_path, outcome, where, signum):
    client, deadline = start_client(tmp_path, where)
    outcome.client(client.pid)
    expected = NUM_SERVERS * PROCESSES_PER_SERVER
    started = tagged_processes({client.pid})
    while len(started) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        started = tagged_processes({client.pid})
    if len(started) != expected:
        client.kill()
    assert len(started) == expected, started
    if signum is not None:
        client.send_signal(signum)
    else:
        client.stdin.write("exit\n")
        client.stdin.flush()
    client.wait(timeout=STARTUP_WAIT)
    client.stdin.close()
    client.stdout.close()
    # The `outcome` fixture waits (boundedly) for every tagged process to end, and fails if not.
    outcome.survived()


def all_gone(clients: set[int], seconds: float = 10.0) -> bool:
    """Whether every process tagged with `clients` is gone within `seconds` (a killed process
    takes a moment to die, longer on a loaded machine)."""
    deadline = time.monotonic() + seconds
    while tagged_processes(clients) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not tagged_processes(clients)


def spawner(**options):
    return make_session(
        "gymnasium-subprocess",
        "tests.faulty_envs:Spawner-v0",
        num_envs=2,
        num_servers=NUM_SERVERS,
        seed=0,
        **options,
    )


def test_close_ends_what_the_environments_started(outcome):
    with spawner() as session:
        session.step_checked(torch.zeros(2, dtype=torch.int64))
        deadline = time.monotonic() + STARTUP_WAIT
        while (
            len(tagged_processes(outcome.clients)) < NUM_SERVERS * PROCESSES_PER_SERVER
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert len(tagged_processes(outcome.clients)) == NUM_SERVERS * PROCESSES_PER_SERVER
    assert all_gone(outcome.clients)
    outcome.survived()


def test_a_hung_server_is_killed_with_its_children(tmp_path, outcome):
    session = spawner(timeout=2.0, make_kwargs={"hang": True, "fault_step": 1})
    with pytest.raises(BridgeError, match="did not answer 'step' within 2 s and was killed"):
        session.step_checked(torch.zeros(2, dtype=torch.int64))
    assert all_gone(outcome.clients)
    outcome.refused()


@pytest.mark.slow
def test_a_forgotten_session_ends_what_the_environments_started(outcome):
    session = spawner()
    session.step_checked(torch.zeros(2, dtype=torch.int64))
    del session
    gc.collect()
    assert all_gone(outcome.clients)
    outcome.survived()

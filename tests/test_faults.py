"""Fault injection: real misbehaving environments, in this process and through the bridge.

Each fault must become a clear error naming what went wrong, the environment and the step,
within the timeout; the bridge must report what the in-process session reports, and no server
process may outlive a test (after `close`, a forgotten `close`, an exception inside a `with`
block, an interrupt, or the death of the client).

Environment 2 of 3 is the faulty one (`fault_seeds`), at its third step (session step 2); the
bridge runs 2 servers, so that environment is the first of server 1 and the message must
translate its index.
"""

import gc
import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from checked_rl.runtime.contract import ContractViolation
from checked_rl.runtime.sessions import (
    GYMNASIUM_KINDS,
    EnvironmentStepError,
    SessionStateError,
    make_session,
)
from checked_rl.runtime.sessions.subprocess_envs import BridgeError
from checked_rl.spec.contract import FIELDS
from tests.faulty_envs import EXIT_CODE, assert_gone

FAULT_TIMEOUT = 2.0
"""The bridge timeout in these tests: a hung server is given up on after this many seconds."""

ORPHAN_WAIT = 10.0
"""How long servers of a dead client may take to notice that their input closed."""

SEED = 10
NUM_ENVS = 3
FAULTY_ENV = 2
FAULT_STEP = 2
MAKE_KWARGS = {"fault_seeds": [SEED + FAULTY_ENV]}
ACTIONS = torch.tensor([0, 1, 1])


def session(kind: str, name: str, timeout: float = FAULT_TIMEOUT, **make_kwargs: object):
    """A session of `kind` over 3 copies of the faulty environment `name`, reset with SEED."""
    options = {"num_servers": 2, "timeout": timeout} if kind == "gymnasium-subprocess" else {}
    return make_session(
        kind,
        f"tests.faulty_envs:{name}",
        num_envs=NUM_ENVS,
        make_kwargs={**MAKE_KWARGS, **make_kwargs},
        seed=SEED,
        **options,
    )


def pids_of(checked_session) -> list[int]:
    """The server pids of a bridge session; nothing for an in-process one."""
    return list(getattr(checked_session, "pids", []))


def step_until_fault(checked_session, error_type):
    """Step until the fault step; return the error it raised (and check the steps before)."""
    for _ in range(FAULT_STEP):
        checked_session.step_checked(ACTIONS)
    with pytest.raises(error_type) as caught:
        checked_session.step_checked(ACTIONS)
    return caught.value


CONTRACT_FAULTS = {
    "NanAtStep-v0": "contract violation: next_observation[env 2, step 2] entry 1 = nan "
    "is not finite",
    "InfiniteReward-v0": "contract violation: reward[env 2, step 2] = inf is not finite",
    "WrongShape-v0": "contract violation: next_observation[env 2, step 2] has shape (4,), "
    "expected (3,)",
    "OutOfBox-v0": "contract violation: next_observation[env 2, step 2] entry 0 = 100.0 "
    "is out of bounds [-10.0, 10.0]",
}


@pytest.mark.parametrize("kind", GYMNASIUM_KINDS)
@pytest.mark.parametrize("name", sorted(CONTRACT_FAULTS))
def test_contract_faults_are_rejected_naming_field_env_and_step(kind, name):
    if kind == "gymnasium-vector" and name == "WrongShape-v0":
        pytest.skip("a vector environment stacks its copies itself: a wrong shape fails inside "
                    "it (EnvironmentStepError), before the contract sees a batch")
    with session(kind, name) as checked:
        pids = pids_of(checked)
        violation = step_until_fault(checked, ContractViolation)
        assert str(violation) == CONTRACT_FAULTS[name]
        assert (violation.violation.env, violation.violation.step) == (FAULTY_ENV, FAULT_STEP)
        with pytest.raises(SessionStateError, match="refused because step 2 raised"):
            checked.step_checked(ACTIONS)
        checked.reset(seed=SEED)
        assert checked.step_checked(ACTIONS).reward.tolist() == [1.0] * NUM_ENVS
    assert_gone(pids)


@pytest.mark.parametrize("kind", GYMNASIUM_KINDS)
def test_an_exception_in_step_names_environment_step_and_cause(kind):
    if kind == "gymnasium-vector":
        pytest.skip("a vector environment does not say which copy raised; tests/test_vector_envs"
                    ".py checks its errors")
    with session(kind, "RaiseInStep-v0") as checked:
        pids = pids_of(checked)
        error = step_until_fault(checked, EnvironmentStepError)
        message = str(error)
        assert "RaiseInStep-v0 environment 2 raised in step (action 1) at step 2" in message
        assert "RuntimeError: simulated simulator failure at step 3" in message
        if kind == "gymnasium-subprocess":
            assert "envs 2..2" in message
            assert "raise RuntimeError" in error.server_traceback
        checked.reset(seed=SEED + 1)
        checked.step_checked(ACTIONS)
    assert_gone(pids)


def test_a_hung_step_times_out_and_kills_the_servers():
    with session("gymnasium-subprocess", "SleepForever-v0") as checked:
        pids = pids_of(checked)
        error = step_until_fault(checked, BridgeError)
        assert_gone(pids)
        assert "server 1" in str(error) and "envs 2..2" in str(error)
        assert f"did not answer 'step' within {FAULT_TIMEOUT:g} s and was killed" in str(error)
        assert error.exit_code == -9
        with pytest.raises(BridgeError, match="servers are closed"):
            checked.reset(seed=SEED)


def test_a_server_that_exits_mid_episode_reports_code_and_stderr():
    with session("gymnasium-subprocess", "ExitMidEpisode-v0") as checked:
        pids = pids_of(checked)
        error = step_until_fault(checked, BridgeError)
        assert_gone(pids)
    assert error.exit_code == EXIT_CODE
    assert f"closed its channel during 'step'; exit code {EXIT_CODE}" in str(error)
    assert "faulty env: giving up at step 3" in error.stderr_tail
    assert "last lines of its stderr:\n  faulty env: giving up at step 3" in str(error)


def _tail_once_it_holds(server, fragments, seconds=10.0):
    """The server's stderr tail as text, once it holds every fragment or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        tail = "\n".join(server.tail)
        if all(fragment in tail for fragment in fragments) or time.monotonic() > deadline:
            return tail
        time.sleep(0.01)


def test_an_environment_printing_to_stdout_works_through_the_bridge(capfd):
    steps = 60
    with (
        session("gymnasium", "PrintsEveryStep-v0") as reference,
        session("gymnasium-subprocess", "PrintsEveryStep-v0", timeout=10.0) as bridge,
    ):
        generator = torch.Generator().manual_seed(0)
        episodes = 0
        for _ in range(steps):
            actions = torch.randint(2, (NUM_ENVS,), generator=generator)
            expected, got = reference.step_checked(actions), bridge.step_checked(actions)
            for name in FIELDS:
                assert torch.equal(getattr(got, name), getattr(expected, name)), name
            episodes += int(got.done.sum())
        # The server's stderr is read by a thread of its own: wait (boundedly) until it has
        # read the last step's lines rather than race it.
        expected_lines = (f"PrintsEveryStep: step {steps - 50}, action", "CRLB raw bytes")
        tail = _tail_once_it_holds(bridge.pool.servers[1], expected_lines)
    assert episodes == NUM_ENVS
    assert f"PrintsEveryStep: step {steps - 50}, action" in tail
    assert "CRLB raw bytes from the simulator on fd 1" in tail
    assert "PrintsEveryStep: step 1, action" in capfd.readouterr().out


def test_a_forgotten_close_leaves_no_process():
    checked = session("gymnasium-subprocess", "Drift-v0")
    pids = pids_of(checked)
    checked.step_checked(ACTIONS)
    del checked
    gc.collect()
    assert_gone(pids)


def test_an_exception_inside_a_with_block_leaves_no_process():
    pids = []
    with pytest.raises(KeyError, match="mid-block"):
        with session("gymnasium-subprocess", "Drift-v0") as checked:
            pids = pids_of(checked)
            checked.step_checked(ACTIONS)
            raise KeyError("mid-block")
    assert len(pids) == 2
    assert_gone(pids)


def test_an_interrupt_during_a_read_kills_the_servers():
    checked = session("gymnasium-subprocess", "SleepForever-v0", timeout=60.0)
    pids = pids_of(checked)
    for _ in range(FAULT_STEP):
        checked.step_checked(ACTIONS)
    main = threading.main_thread().ident
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            checked.step_checked(ACTIONS)
    finally:
        timer.cancel()
    assert_gone(pids)


CLIENT_THAT_DIES = """
import json, os
from checked_rl.runtime.bridge.processes import ServerPool
pool = ServerPool("CartPole-v1", 2, 2, "{}", timeout=30)
pool.request("describe")
print(json.dumps(pool.pids), flush=True)
os._exit(0)
"""


def test_servers_exit_when_their_client_dies_without_cleaning_up():
    completed = subprocess.run(
        [sys.executable, "-c", CLIENT_THAT_DIES],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pids = json.loads(completed.stdout)
    assert len(pids) == 2
    assert_gone(pids, wait=ORPHAN_WAIT)

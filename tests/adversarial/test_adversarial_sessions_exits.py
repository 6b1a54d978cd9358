"""Environments that try to end the process, interrupts, and closes that raise.

An environment's `SystemExit`, `KeyboardInterrupt` (raised by itself, no signal) or any other
`BaseException` inside `step` is an `EnvironmentStepError` naming the environment and the step,
in process and through the bridge alike, and the session is resettable. A real SIGINT (the
user's Ctrl-C) during an in-process step goes through as `KeyboardInterrupt` (or as whatever
the user's own SIGINT handler raises), and the session refuses until reset. A `close()` that
raises is reported after every environment is closed, and does not hide an exception that
ended a `with` block.
"""

import signal
import threading

import pytest
import torch

from checked_rl.runtime.sessions import (
    EnvironmentCloseError,
    EnvironmentStepError,
    SessionStateError,
    make_session,
)

SEED = 10
ACTIONS = torch.tensor([0, 1, 1])
KINDS = ("gymnasium", "gymnasium-subprocess")


def session(kind: str, name: str, **make_kwargs):
    options = {"num_servers": 2, "timeout": 30.0} if kind == "gymnasium-subprocess" else {}
    return make_session(
        kind,
        f"tests.faulty_envs:{name}",
        num_envs=3,
        seed=SEED,
        make_kwargs={"fault_seeds": [SEED + 2], **make_kwargs},
        **options,
    )


EXITS = {
    "ExitInStep-v0": "SystemExit: 0",
    "InterruptInStep-v0": "KeyboardInterrupt: raised by the environment",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(EXITS))
def test_an_environment_ending_the_process_is_an_environment_error(outcome, kind, name):
    with session(kind, name) as checked:
        for _ in range(2):
            checked.step_checked(ACTIONS)
        with pytest.raises(EnvironmentStepError) as caught:
            checked.step_checked(ACTIONS)
        message = str(caught.value)
        assert f"{name} environment 2 raised in step (action 1) at step 2" in message
        assert message.endswith(EXITS[name])
        checked.reset(seed=SEED + 100)
        checked.step_checked(ACTIONS)
    outcome.refused()


class StopTraining(Exception):
    """What a user's own SIGINT handler raises."""


def interrupt_soon(seconds: float = 0.3) -> threading.Timer:
    timer = threading.Timer(
        seconds, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
    )
    timer.start()
    return timer


@pytest.mark.parametrize("handler", ["python default", "user's own"])
def test_the_users_ctrl_c_goes_through_and_the_session_waits_for_a_reset(outcome, handler):
    expected = KeyboardInterrupt
    previous = signal.getsignal(signal.SIGINT)
    if handler == "user's own":
        expected = StopTraining

        def stop(signum, frame):
            raise StopTraining

        signal.signal(signal.SIGINT, stop)
    try:
        with session("gymnasium", "SleepForever-v0") as checked:
            for _ in range(2):
                checked.step_checked(ACTIONS)
            timer = interrupt_soon()
            try:
                with pytest.raises(expected):
                    checked.step_checked(ACTIONS)
            finally:
                timer.cancel()
            with pytest.raises(SessionStateError, match="refused because step 2 raised"):
                checked.step_checked(ACTIONS)
            assert signal.getsignal(signal.SIGINT) is (
                stop if expected is StopTraining else previous
            )
            checked.reset(seed=SEED + 100)
            checked.step_checked(ACTIONS)
    finally:
        signal.signal(signal.SIGINT, previous)
    outcome.survived()


CLOSE_MESSAGE = (
    "RaiseInClose-v0: close() raised in 3 environment(s), first in environment 0: "
    "RuntimeError: simulated failure in close"
)


@pytest.mark.parametrize("kind", KINDS)
def test_a_raising_close_is_reported_after_closing_everything(outcome, kind):
    checked = session(kind, "RaiseInClose-v0")
    checked.step_checked(ACTIONS)
    with pytest.raises(EnvironmentCloseError) as caught:
        checked.close()
    assert str(caught.value) == CLOSE_MESSAGE
    checked.close()
    with pytest.raises(SessionStateError, match="closed"):
        checked.reset()
    outcome.refused()


@pytest.mark.parametrize("kind", KINDS)
def test_a_raising_close_does_not_hide_what_ended_the_block(outcome, kind):
    with pytest.raises(KeyError, match="the result") as caught:
        with session(kind, "RaiseInClose-v0") as checked:
            checked.step_checked(ACTIONS)
            raise KeyError("the result")
    assert caught.value.__notes__ == [CLOSE_MESSAGE]
    outcome.survived()

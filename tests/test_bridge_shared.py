"""The bridge's shared-memory transport: the same transitions as the pipe and the in-process
session, and no segment left behind, whatever ends which process.

Segments are POSIX shared memory; on Linux their names are files under /dev/shm, which is how
these tests see that a name is gone.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from checked_rl.runtime.bridge import BridgeError
from checked_rl.runtime.bridge.messages import ReplySchema, check_request
from checked_rl.runtime.bridge.processes import ServerPool
from checked_rl.runtime.bridge.protocol import ProtocolError
from checked_rl.runtime.bridge.shared import SharedArrays, layout
from checked_rl.runtime.contract import ContractViolation
from checked_rl.runtime.sessions import make_session
from checked_rl.runtime.sessions.subprocess_envs import SubprocessSession
from checked_rl.spec.contract import FIELDS
from tests.faulty_envs import alive, assert_gone

TIMEOUT = 10.0
SHM = "/dev/shm"
pytestmark = pytest.mark.skipif(not os.path.isdir(SHM), reason="needs /dev/shm (Linux)")


def present(names: list[str]) -> list[str]:
    """The segment names among `names` that still exist."""
    return [name for name in names if os.path.exists(os.path.join(SHM, name))]


def gone_within(names: list[str], seconds: float = 10.0) -> bool:
    """Whether every one of `names` is removed within `seconds` (a resource tracker or a dying
    process takes a moment, longer on a loaded machine)."""
    deadline = time.monotonic() + seconds
    while present(names) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not present(names)


def bridge(
    env_id: str, num_servers: int, transport: str, num_envs: int = 5, **make_kwargs
) -> SubprocessSession:
    return make_session(
        "gymnasium-subprocess",
        env_id,
        num_envs=num_envs,
        num_servers=num_servers,
        transport=transport,
        timeout=TIMEOUT,
        make_kwargs=make_kwargs,
    )


def actions_for(session, generator: torch.Generator) -> torch.Tensor:
    if session.n_actions is not None:
        return torch.randint(session.n_actions, (session.num_envs,), generator=generator)
    box = session.action_box
    low, high = (torch.from_numpy(np.array(b, dtype=box.dtype)) for b in (box.low, box.high))
    # Beyond the box now and then, so that the clipping on the way is exercised too.
    uniform = torch.rand((session.num_envs, *low.shape), generator=generator, dtype=low.dtype)
    return low - 0.5 + (high - low + 1.0) * uniform


@pytest.mark.parametrize("num_servers", [1, 2])
@pytest.mark.parametrize(
    ("env_id", "steps"), [("CartPole-v1", 60), ("Pendulum-v1", 25)], ids=["CartPole", "Pendulum"]
)
def test_shared_memory_pipe_and_in_process_agree_bit_for_bit(env_id, steps, num_servers):
    # Episodes of at most 7 steps: truncations and same-step auto-resets happen many times over
    # (CartPole also terminates with random actions).
    make_kwargs = {"max_episode_steps": 7}
    reference = make_session("gymnasium", env_id, num_envs=5, make_kwargs=make_kwargs)
    shared = bridge(env_id, num_servers, "auto", **make_kwargs)
    pipe = bridge(env_id, num_servers, "pipe", **make_kwargs)
    assert (shared.transport, pipe.transport) == ("shared-memory", "pipe")
    generator = torch.Generator().manual_seed(num_servers)
    finished = {"terminated": 0, "truncated": 0}
    with reference, shared, pipe:
        first = reference.reset(seed=3)
        assert torch.equal(shared.reset(seed=3), first) and torch.equal(pipe.reset(seed=3), first)
        for _ in range(steps):
            actions = actions_for(reference, generator)
            expected = reference.step_checked(actions)
            for session in (shared, pipe):
                got = session.step_checked(actions)
                for name in FIELDS:
                    want, have = getattr(expected, name), getattr(got, name)
                    assert have.dtype == want.dtype and torch.equal(have, want), name
            assert torch.equal(shared.observe(), reference.observe())
            for name in finished:
                finished[name] += int(getattr(expected, name).sum())
    assert finished["truncated"] > 0
    assert_gone(shared.pids + pipe.pids)


def test_transport_is_chosen_and_checked():
    with bridge("CartPole-v1", 1, "shared-memory") as session:
        assert session.transport == "shared-memory"
        assert all(server.schema.shared for server in session.pool.servers)
    with pytest.raises(ValueError, match="transport must be one of"):
        bridge("CartPole-v1", 1, "mmap")


def test_auto_falls_back_to_the_pipe_where_no_segment_can_be_made(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SharedArrays, "create", refuse)
    with bridge("CartPole-v1", 2, "auto") as session:
        assert session.transport == "pipe"
        session.reset(seed=0)
        session.step_checked(torch.ones(5, dtype=torch.int64))
    with pytest.raises(BridgeError, match="cannot create shared memory"):
        bridge("CartPole-v1", 1, "shared-memory")


def described(pool: ServerPool) -> ServerPool:
    """`pool` (of CartPoles) after `describe`, its replies' schema set as a session sets it."""
    pool.request("describe")
    for server in pool.servers:
        server.schema = ReplySchema(server.num_envs, (4,), np.dtype(np.float32))
    return pool


def test_a_server_refuses_a_segment_it_cannot_map_and_keeps_serving():
    pool = described(ServerPool("CartPole-v1", 2, 1, "{}", TIMEOUT))
    try:
        for segment in ("no_such_segment", "../etc/passwd"):
            [(header, _)] = pool.request("attach", [{"segment": segment}])
            assert header["ok"] is False and header["kind"] in ("internal", "protocol")
            assert "segment" in header["error"]
        [(header, arrays)] = pool.request("reset", [{"seeds": [0, 1]}])
        assert header == {"ok": True} and arrays["observation"].shape == (2, 4)
    finally:
        pool.close()


def test_a_step_without_actions_needs_a_segment():
    pool = described(ServerPool("CartPole-v1", 2, 1, "{}", TIMEOUT))
    try:
        pool.request("reset")
        [(header, _)] = pool.request("step")
        assert header["ok"] is False and "expected an array 'actions'" in header["error"]
    finally:
        pool.close()


def test_a_segment_too_small_for_its_layout_is_refused():
    arrays, size = layout(4, ((4,), np.dtype(np.float32)), None)
    small = SharedArrays.create(*layout(1, ((1,), np.dtype(np.float32)), None))
    try:
        with pytest.raises(ValueError, match="expected"):
            SharedArrays.attach(small.name, arrays, size * 2)
        with pytest.raises(ValueError, match="segment name"):
            SharedArrays.attach("/dev/shm/x", arrays, size)
    finally:
        small.release()
    assert not present([small.name])


def test_names_are_gone_once_the_servers_attached_and_segments_released_at_close():
    with bridge("CartPole-v1", 2, "auto") as session:
        names = [server.shared.name for server in session.pool.servers]
        assert not present(names)
        session.reset(seed=0)
        session.step_checked(torch.ones(5, dtype=torch.int64))
    assert all(server.shared.arrays == {} for server in session.pool.servers)
    assert_gone(session.pids)


def test_a_server_killed_before_attaching_leaves_no_segment():
    pool = ServerPool("CartPole-v1", 3, 1, "{}", TIMEOUT)
    try:
        pool.request("describe")
        server = pool.servers[0]
        server.shared = SharedArrays.create(*layout(3, ((4,), np.dtype(np.float32)), None))
        name = server.shared.name
        assert present([name])
        os.kill(server.pid, signal.SIGKILL)
        with pytest.raises(BridgeError, match=r"closed its channel|did not answer"):
            pool.request("attach", [{"segment": name}])
        assert not present([name])
    finally:
        pool.kill()
    assert_gone(pool.pids)


@pytest.mark.parametrize("how", ["SIGKILL", "os._exit"])
def test_a_server_that_dies_mid_session_leaves_no_segment_and_no_process(how):
    env_id = "CartPole-v1" if how == "SIGKILL" else "tests.faulty_envs:ExitMidEpisode-v0"
    with bridge(env_id, 2, "auto") as session:
        names = [server.shared.name for server in session.pool.servers]
        session.reset(seed=0)
        if how == "SIGKILL":
            os.kill(session.pids[1], signal.SIGKILL)
        with pytest.raises(BridgeError, match="server"):
            for _ in range(50):
                session.step_checked(torch.ones(5, dtype=torch.int64))
    assert not present(names)
    assert all(server.shared.arrays == {} for server in session.pool.servers)
    assert_gone(session.pids, wait=TIMEOUT)


CLIENT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from checked_rl.runtime.bridge.shared import SharedArrays, layout
    from checked_rl.runtime.sessions import make_session
    session = make_session("gymnasium-subprocess", "CartPole-v1", num_envs=4, num_servers=2)
    session.reset(seed=0)
    # A segment made and not yet attached (the window before every server has attached).
    pending = SharedArrays.create(*layout(4, ((4,), np.dtype(np.float32)), None))
    print(pending.name, *session.pids, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_client_killed_outright_leaves_no_segment_and_no_server(signum):
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = client.stdout.readline().split()
        assert line, client.stderr.read()
        name, pids = line[0], [int(pid) for pid in line[1:]]
        assert present([name]) and all(alive(pid) for pid in pids)
        client.send_signal(signum)
        client.wait(timeout=TIMEOUT)
        # The client's resource tracker removes what it had not removed yet.
        assert gone_within([name]), f"segment {name} outlived its client"
        assert_gone(pids, wait=TIMEOUT)
    finally:
        client.kill()
        client.wait()
        client.stdout.close()
        client.stderr.close()


def test_a_server_checks_attach_requests():
    assert check_request({"cmd": "attach", "segment": "psm_1a"}, {}, 2) == ("attach", "psm_1a")
    for segment in (5, "", "a/b", "x" * 201):
        with pytest.raises(ProtocolError, match="attach: expected 'segment'"):
            check_request({"cmd": "attach", "segment": segment}, {}, 2)
    with pytest.raises(ProtocolError, match="missing key 'segment'"):
        check_request({"cmd": "attach"}, {}, 2)
    assert check_request({"cmd": "step"}, {}, 2, shared=True) == ("step", None)


BAD_FLAG_SERVER = textwrap.dedent(
    """
    import sys
    from checked_rl.runtime.bridge import server

    honest = server.GymServer.step

    def step(self, actions):
        reply = honest(self, actions)
        if self.shared is not None:  # a server that writes a byte 2 into a bool flag
            self.shared.arrays["truncated"].view("u1")[-1] = 2
        return reply

    server.GymServer.step = step
    sys.exit(server.main(sys.argv[1:]))
    """
)


def test_a_flag_other_than_0_or_1_in_a_segment_is_a_bridge_error(tmp_path, monkeypatch):
    script = tmp_path / "bad_flag_server.py"
    script.write_text(BAD_FLAG_SERVER)
    monkeypatch.setattr(ServerPool.__init__, "__defaults__", ([sys.executable, str(script)],))
    with bridge("CartPole-v1", 2, "auto") as session:
        names = [server.shared.name for server in session.pool.servers]
        session.reset(seed=0)
        with pytest.raises(BridgeError, match="wrote a flag other than 0 or 1"):
            session.step_checked(torch.ones(5, dtype=torch.int64))
    assert not present(names)
    assert_gone(session.pids, wait=TIMEOUT)


@pytest.mark.parametrize(
    ("env", "what"),
    [
        ("IntTruncated-v0", None),
        ("ArrayFlag-v0", None),
        ("StrReward-v0", None),
        ("Hands-v0", "observation:float64"),
    ],
)
def test_values_off_the_usual_path_get_the_in_process_verdict(env, what):
    env_id = f"tests.faulty_envs:{env}"
    kwargs = {"what": what} if what else {}
    verdicts = []
    for session in (
        make_session("gymnasium", env_id, num_envs=2, make_kwargs=kwargs),
        bridge(env_id, 2, "auto", num_envs=2, **kwargs),
    ):
        with session:
            session.reset(seed=0)
            with pytest.raises(ContractViolation) as caught:
                for _ in range(5):
                    session.step_checked(torch.ones(session.num_envs, dtype=torch.int64))
            verdicts.append(str(caught.value).replace(" (bridge", "")[:120])
    assert verdicts[0] == verdicts[1]

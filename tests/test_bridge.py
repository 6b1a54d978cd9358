"""The Gymnasium bridge: its wire format, a real server fed bad frames, and sessions through it.

Bridge sessions must yield exactly the transitions of the in-process Gymnasium session for the
same seeds and actions; garbage on the channel, in either direction, must become a clear error
and never a hang or a crash of the other side.
"""

import json
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checked_rl.properties.sessions import session_machine, sessions_agree_machine
from checked_rl.properties.strategies.envs import SEEDS
from checked_rl.runtime.bridge import BridgeError
from checked_rl.runtime.bridge.processes import SERVER_COMMAND, ServerPool
from checked_rl.runtime.bridge.protocol import (
    MAGIC,
    MAX_FRAME_BYTES,
    MAX_INTEGER_DIGITS,
    PREFIX,
    VERSION,
    ProtocolError,
    decode_body,
    decode_prefix,
    encode_frame,
)
from checked_rl.runtime.bridge.server import EXIT_BAD_FRAME
from checked_rl.runtime.sessions import make_session
from checked_rl.runtime.sessions.subprocess_envs import SubprocessSession
from checked_rl.spec.contract import FIELDS
from checked_rl.spec.envs import cartpole
from tests.faulty_envs import assert_gone

TIMEOUT = 10.0
"""Seconds a request may take in these tests: generous, nothing here is meant to hang."""

MAX_STEPS = 40

WIRE_DTYPES = st.sampled_from(
    [
        np.bool_,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
    ]
)


def decode(frame: bytes) -> tuple[dict, dict]:
    """Decode one whole frame."""
    size = decode_prefix(frame[: PREFIX.size])
    assert len(frame) == PREFIX.size + size
    return decode_body(frame[: PREFIX.size], frame[PREFIX.size :])


# The wire format.


@given(
    arrays=st.dictionaries(
        st.text(min_size=1, max_size=8),
        WIRE_DTYPES.flatmap(
            lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_side=4))
        ),
        max_size=4,
    ),
    header=st.dictionaries(
        st.sampled_from(["cmd", "seeds", "note"]),
        st.integers(-(10**MAX_INTEGER_DIGITS) + 1, 10**MAX_INTEGER_DIGITS - 1),
        max_size=3,
    ),
)
@example(arrays={"0": np.array(False)}, header={})
def test_frames_round_trip_exactly(arrays, header):
    decoded_header, decoded = decode(encode_frame(header, arrays))
    assert decoded_header == header
    assert list(decoded) == list(arrays)
    for name, array in arrays.items():
        assert decoded[name].dtype == array.dtype.newbyteorder("<")
        assert decoded[name].shape == array.shape
        assert decoded[name].tobytes() == array.astype(decoded[name].dtype).tobytes()


def test_big_endian_arrays_travel_little_endian():
    array = np.arange(3, dtype=">f8")
    _, decoded = decode(encode_frame({}, {"x": array}))
    assert decoded["x"].dtype.str == "<f8"
    assert decoded["x"].tolist() == [0.0, 1.0, 2.0]


def test_objects_and_nonfinite_headers_are_never_encoded():
    with pytest.raises(ProtocolError, match="dtype object cannot be sent"):
        encode_frame({}, {"x": np.array([{}, None], dtype=object)})
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_frame({"reward": float("nan")})


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (b"hello, world! ok", "expected magic b'CRLB'"),
        (PREFIX.pack(MAGIC, VERSION + 1, 2, 0), "expected protocol version 1, got 2"),
        (PREFIX.pack(MAGIC, VERSION, 2, MAX_FRAME_BYTES), "exceeds the maximum"),
        (PREFIX.pack(MAGIC, VERSION, 2**31, 0), "header of 2147483648 bytes exceeds"),
    ],
)
def test_bad_prefixes_are_refused_before_reading_on(prefix, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_prefix(prefix)


def body_frame(header: bytes, payload: bytes = b"") -> bytes:
    """A frame with a valid prefix around an arbitrary header and payload."""
    return PREFIX.pack(MAGIC, VERSION, len(header), len(payload)) + header + payload


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (body_frame(b"\xff\xfe"), "not UTF-8 JSON"),
        (body_frame(b"[1, 2]"), "must be a JSON object"),
        (body_frame(b'{"reward": NaN}'), "non-finite number NaN"),
        (body_frame(b'{"arrays": 3}'), "'arrays' must be a list"),
        (body_frame(b'{"arrays": [{"name": "x"}]}'), "expected an array record"),
        (
            body_frame(b'{"arrays": [{"name": "x", "dtype": "|O", "shape": [1]}]}'),
            "has dtype '|O'",
        ),
        (
            body_frame(b'{"arrays": [{"name": "x", "dtype": "<f8", "shape": [-1]}]}'),
            "non-negative ints",
        ),
        (
            body_frame(b'{"arrays": [{"name": "x", "dtype": "<f8", "shape": [2]}]}', b"\0" * 8),
            "needs 16 bytes",
        ),
        (body_frame(b"{}", b"\0" * 3), "arrays account for 0 payload bytes"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(frame, message):
    with pytest.raises(ProtocolError, match=message):
        decode(frame)


# A real server process fed by hand.


def run_server(data: bytes, env_id: str = "CartPole-v1") -> tuple[list[tuple[dict, dict]], int]:
    """Feed `data` to a fresh server's stdin (then close it); return its replies and exit code."""
    completed = subprocess.run(
        [*SERVER_COMMAND, "--env-id", env_id, "--num-envs", "2"],
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    replies, rest = [], completed.stdout
    while rest:
        size = PREFIX.size + decode_prefix(rest[: PREFIX.size])
        replies.append(decode(rest[:size]))
        rest = rest[size:]
    return replies, completed.returncode


def test_server_answers_bad_requests_and_keeps_serving():
    requests = [
        encode_frame({"cmd": "describe"}),
        encode_frame({"cmd": "jump"}),
        encode_frame({"cmd": "reset", "seeds": [1]}),
        encode_frame({"cmd": "step"}, {"actions": np.array([0.5, 1.0])}),
        encode_frame({"cmd": "step"}, {"actions": np.array([0, 2])}),
        encode_frame({"cmd": "reset", "seeds": [1, 2]}),
        encode_frame({"cmd": "step"}, {"actions": np.array([0, 1])}),
        encode_frame({"cmd": "close"}),
    ]
    replies, code = run_server(b"".join(requests))
    headers = [header for header, _ in replies]
    assert code == 0
    assert headers[0]["ok"] and headers[0]["num_envs"] == 2
    assert headers[0]["observation_space"]["type"] == "Box"
    assert "unknown command 'jump'" in headers[1]["error"]
    assert "list of 2 integers, got [1]" in headers[2]["error"]
    assert "integer dtype, got shape (2,) and dtype float64" in headers[3]["error"]
    assert "actions[1] = 2 is outside Discrete(2)" in headers[4]["error"]
    assert [h["ok"] for h in headers[5:]] == [True, True, True]
    expected = gymnasium.make("CartPole-v1").reset(seed=2)[0]
    np.testing.assert_array_equal(replies[5][1]["observation"][1], expected)


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "expected magic b'CRLB'"),
        (PREFIX.pack(MAGIC, VERSION, 10, 2**30), "exceeds the maximum"),
        (PREFIX.pack(MAGIC, VERSION, 100, 0) + b"{}", "stream ended 98 bytes short"),
    ],
)
def test_server_replies_to_a_broken_frame_then_exits(garbage, message):
    replies, code = run_server(encode_frame({"cmd": "describe"}) + garbage)
    assert code == EXIT_BAD_FRAME
    assert replies[0][0]["ok"]
    assert not replies[1][0]["ok"] and message in replies[1][0]["error"]


def test_server_exits_quietly_when_its_input_closes():
    replies, code = run_server(b"")
    assert (replies, code) == ([], 0)


# Garbage from a real process on the client's side of the channel.

FAKE_SERVERS = {
    "prints": ("print('Welcome to my simulator!', flush=True)", "malformed reply"),
    "huge": (
        "import os, struct; os.write(1, struct.pack('<4sB3xII', b'CRLB', 1, 8, 2**31))",
        "exceeds the maximum",
    ),
    "wrong_version": (
        "import os, struct; os.write(1, struct.pack('<4sB3xII', b'CRLB', 9, 2, 0) + b'{}')",
        "expected protocol version 1, got 9",
    ),
    "bad_json": (
        "import os, struct; os.write(1, struct.pack('<4sB3xII', b'CRLB', 1, 3, 0) + b'{{{')",
        "not UTF-8 JSON",
    ),
    "half_then_exit": (
        "import os, struct; os.write(1, struct.pack('<4sB3xII', b'CRLB', 1, 50, 0) + b'{');"
        " os._exit(4)",
        "closed its channel",
    ),
    "silent": ("import time; time.sleep(60)", "did not answer 'describe' within 1 s"),
}


@pytest.mark.parametrize("name", sorted(FAKE_SERVERS))
def test_garbage_from_a_server_is_a_bridge_error(name):
    code, message = FAKE_SERVERS[name]
    pool = ServerPool(
        "CartPole-v1", 2, 1, "{}", timeout=1.0, server_command=[sys.executable, "-c", code]
    )
    with pytest.raises(BridgeError, match=message) as caught:
        pool.request("describe")
    assert_gone(pool.pids)
    if name == "half_then_exit":
        assert caught.value.exit_code == 4


def test_a_server_that_cannot_start_is_a_bridge_error():
    with pytest.raises(BridgeError, match="could not start server 0 with \\['/nonexistent/python'"):
        ServerPool("CartPole-v1", 2, 2, "{}", timeout=1.0, server_command=["/nonexistent/python"])


# Sessions through the bridge.


@pytest.fixture(scope="module", params=[1, 3], ids=["1-server", "3-servers"])
def session_pair(request):
    """An in-process and a bridge session over 5 CartPoles, shared by the module's examples."""
    reference = make_session("gymnasium", "CartPole-v1", num_envs=5)
    bridge = make_session(
        "gymnasium-subprocess",
        "CartPole-v1",
        num_envs=5,
        num_servers=request.param,
        timeout=TIMEOUT,
    )
    with reference, bridge:
        yield reference, bridge
    assert_gone(bridge.pids)


@given(
    seed=SEEDS,
    actions=st.lists(st.lists(st.integers(0, 1), min_size=5, max_size=5), max_size=MAX_STEPS),
)
@example(seed=0, actions=[[1, 1, 1, 1, 0]] * MAX_STEPS)
def test_bridge_matches_in_process_gymnasium(session_pair, seed, actions):
    reference, bridge = session_pair
    assert torch.equal(reference.reset(seed=seed), bridge.reset(seed=seed))
    for step_actions in actions:
        tensor = torch.tensor(step_actions)
        expected, got = reference.step_checked(tensor), bridge.step_checked(tensor)
        for name in FIELDS:
            assert getattr(got, name).dtype == getattr(expected, name).dtype, name
            assert torch.equal(getattr(got, name), getattr(expected, name)), name
        assert torch.equal(reference.observe(), bridge.observe())


def test_unseeded_resets_continue_each_environment_generator():
    with (
        make_session("gymnasium", "CartPole-v1", num_envs=3) as reference,
        make_session("gymnasium-subprocess", "CartPole-v1", num_envs=3, num_servers=2) as bridge,
    ):
        reference.reset(seed=7)
        bridge.reset(seed=7)
        assert torch.equal(reference.reset(), bridge.reset())


def test_bridge_reports_its_spaces_and_contract():
    with SubprocessSession("CartPole-v1", num_envs=2, timeout=TIMEOUT) as session:
        reference = gymnasium.make("CartPole-v1")
        assert session.observation_shape == (4,) and session.n_actions == 2
        assert session.contract.observation_dtype == np.float32
        np.testing.assert_array_equal(
            session.contract.observation_high, reference.observation_space.high
        )


def test_spaces_other_than_box_and_discrete_are_refused():
    with pytest.raises(ValueError, match=r"expected a gymnasium\.spaces\.Box observation space"):
        SubprocessSession("FrozenLake-v1", num_envs=2, num_servers=2, timeout=TIMEOUT)


def test_an_unknown_environment_names_the_server_error():
    with pytest.raises(BridgeError, match="could not make 'NoSuchEnv-v0': NameNotFound") as caught:
        SubprocessSession("NoSuchEnv-v0", num_envs=2, num_servers=2, timeout=TIMEOUT)
    assert "NoSuchEnv" in "\n".join(caught.value.stderr_tail)


def test_make_kwargs_reach_the_servers():
    kwargs = {"max_episode_steps": 3}
    with make_session(
        "gymnasium-subprocess", "CartPole-v1", num_envs=2, make_kwargs=kwargs, seed=0
    ) as session:
        truncated = [
            bool(session.step_checked(torch.tensor([0, 1])).truncated.all()) for _ in range(3)
        ]
    assert truncated == [False, False, True]


def test_arguments_are_checked_before_any_process_starts():
    with pytest.raises(ValueError, match="JSON-serialisable"):
        SubprocessSession("CartPole-v1", make_kwargs={"render_mode": object()})
    with pytest.raises(ValueError, match="1 <= num_servers <= num_envs = 2, got 3"):
        SubprocessSession("CartPole-v1", num_envs=2, num_servers=3)
    with pytest.raises(ValueError, match="positive timeout"):
        SubprocessSession("CartPole-v1", timeout=0)


def test_a_server_keeps_stdout_prints_off_the_channel():
    arguments = ["--env-id", "tests.faulty_envs:PrintsEveryStep-v0", "--make-kwargs"]
    requests = [
        encode_frame({"cmd": "reset", "seeds": [3]}),
        encode_frame({"cmd": "step"}, {"actions": np.array([1])}),
        encode_frame({"cmd": "close"}),
    ]
    completed = subprocess.run(
        [*SERVER_COMMAND, *arguments, json.dumps({})],
        input=b"".join(requests),
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert b"PrintsEveryStep: step 1, action 1" in completed.stderr
    assert b"raw bytes from the simulator" in completed.stderr
    assert b"PrintsEveryStep" not in completed.stdout


# The session protocol's state machines (properties/sessions.py) through the bridge.

MACHINE_SETTINGS = settings(
    max_examples=min(settings().max_examples, 4), stateful_step_count=8
)  # fewer runs than the profile: each run starts server processes and steps hundreds of times
CARTPOLE_LIMIT = {"max_episode_steps": 30}


def bridge_session(num_envs: int = 3, num_servers: int = 2) -> SubprocessSession:
    """A fresh bridge session over short CartPole episodes."""
    return make_session(
        "gymnasium-subprocess",
        num_envs=num_envs,
        num_servers=num_servers,
        make_kwargs=CARTPOLE_LIMIT,
        timeout=TIMEOUT,
    )


def cartpole_reset(rng: np.random.Generator) -> np.ndarray:
    """The reference reset observation of CartPole-v1 drawn from `rng`."""
    return cartpole.reset(cartpole.Params(), rng)[1]


TestBridgeSessionProtocol = session_machine(bridge_session, reference_reset=cartpole_reset).TestCase
TestBridgeSessionProtocol.settings = MACHINE_SETTINGS

TestBridgeAgreesWithInProcess = sessions_agree_machine(
    {
        "gymnasium": lambda: make_session("gymnasium", num_envs=4, make_kwargs=CARTPOLE_LIMIT),
        "bridge": lambda: bridge_session(num_envs=4, num_servers=3),
        "spec": lambda: make_session("spec", num_envs=4, make_kwargs=CARTPOLE_LIMIT),
    }
).TestCase
TestBridgeAgreesWithInProcess.settings = MACHINE_SETTINGS

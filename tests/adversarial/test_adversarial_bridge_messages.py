"""Well-framed but malformed bridge messages, in both directions, with real processes.

Client side: an impostor server (`bridge_impostor.py`) answers `describe` properly or not, then
`reset` or `step` with a malformed reply; the client must raise a one-line `BridgeError` naming
the server, the request and the defect, and leave no process. Server side: a real server gets a
malformed request; it must reply with an error naming the defect, keep serving (the next valid
request is answered), exit 0 at `close` and never print a traceback.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from checked_rl.runtime.bridge import BridgeError
from checked_rl.runtime.bridge.messages import ReplySchema
from checked_rl.runtime.bridge.processes import SERVER_COMMAND, ServerPool
from checked_rl.runtime.bridge.protocol import MAGIC, PREFIX, VERSION, decode_prefix, encode_frame
from checked_rl.runtime.bridge.protocol import decode_body as decode

IMPOSTOR = str(Path(__file__).with_name("bridge_impostor.py"))
K = 2
BOX = {"type": "Box", "shape": [4], "dtype": "<f4"}
DISCRETE = {"type": "Discrete", "n": 2, "start": 0}
BOUNDS = {"low": np.full(4, -1, np.float32), "high": np.full(4, 1, np.float32)}
DESCRIBE = {
    "ok": True,
    "name": "Impostor-v0",
    "num_envs": K,
    "observation_space": BOX,
    "action_space": DISCRETE,
}
OBS = np.zeros((K, 4), np.float32)
STEP = {
    "next_observation": OBS,
    "reward": np.ones(K),
    "terminated": np.zeros(K, bool),
    "truncated": np.zeros(K, bool),
    "observation": OBS,
}


def raw(header: str, payload: bytes = b"") -> bytes:
    """A well-framed frame with a hand-written JSON header (for what `encode_frame` refuses)."""
    data = header.encode()
    return PREFIX.pack(MAGIC, VERSION, len(data), len(payload)) + data + payload


def frame(header: dict, arrays: dict | None = None) -> bytes:
    return encode_frame(header, arrays)


NESTED = "[" * 100_000 + "]" * 100_000
DESCRIBE_JSON = json.dumps({**DESCRIBE, "arrays": []})[:-1]

# (case, request whose reply is malformed, the malformed reply, fragment of the message)
CLIENT_CASES = [
    (
        "missing key",
        "describe",
        frame({k: v for k, v in DESCRIBE.items() if k != "name"}, BOUNDS),
        "missing key 'name'",
    ),
    ("unknown key", "describe", frame({**DESCRIBE, "extra": 1}, BOUNDS), "unexpected key 'extra'"),
    (
        "ok not a bool",
        "describe",
        frame({**DESCRIBE, "ok": "yes"}, BOUNDS),
        "expected 'ok' to be true or false",
    ),
    (
        "wrong num_envs",
        "describe",
        frame({**DESCRIBE, "num_envs": 3}, BOUNDS),
        "'num_envs' is 3, expected 2",
    ),
    (
        "string num_envs",
        "describe",
        frame({**DESCRIBE, "num_envs": "2"}, BOUNDS),
        "'num_envs' is '2', expected 2",
    ),
    (
        "space not an object",
        "describe",
        frame({**DESCRIBE, "observation_space": [1]}, BOUNDS),
        "expected a JSON object, got list",
    ),
    (
        "string in a shape",
        "describe",
        frame({**DESCRIBE, "observation_space": {**BOX, "shape": ["4"]}}, BOUNDS),
        "shape[0]: expected an integer",
    ),
    (
        "dtype not allowed",
        "describe",
        frame({**DESCRIBE, "observation_space": {**BOX, "dtype": "<c16"}}, BOUNDS),
        "dtype '<c16' is not one of",
    ),
    (
        "zero actions",
        "describe",
        frame({**DESCRIBE, "action_space": {**DISCRETE, "n": 0}}, BOUNDS),
        "'n': expected an integer in [1,",
    ),
    ("missing bounds", "describe", frame(DESCRIBE), "missing array 'low'"),
    (
        "bounds of another shape",
        "describe",
        frame(DESCRIBE, {"low": np.zeros(3, np.float32), "high": np.zeros(4, np.float32)}),
        "array 'low' has shape (3,), expected (4,)",
    ),
    (
        "5000-digit integer",
        "describe",
        raw(DESCRIBE_JSON + ',"big":' + "7" * 5000 + "}"),
        "integer of 5000 digits",
    ),
    ("deep nesting", "describe", raw(DESCRIBE_JSON + ',"deep":' + NESTED + "}"), "nests deeper"),
    ("NaN in a header", "describe", raw('{"ok":NaN,"arrays":[]}'), "non-finite number NaN"),
    (
        "absurd empty shape",
        "describe",
        raw('{"ok":true,"arrays":[{"name":"low","dtype":"<f4","shape":[0,1099511627776,4096]}]}'),
        "could not fit in a frame",
    ),
    (
        "unknown error kind",
        "describe",
        frame({"ok": False, "error": "x", "kind": "weird"}),
        "error kind 'weird' is not one of",
    ),
    (
        "error env out of range",
        "reset",
        frame({"ok": False, "error": "x", "kind": "environment", "env": 7}),
        "'env': expected an integer in [0, 2)",
    ),
    (
        "error without text",
        "reset",
        frame({"ok": False, "kind": "environment"}),
        "missing key 'error'",
    ),
    (
        "nested error text",
        "reset",
        frame({"ok": False, "error": {"a": [1]}, "kind": "internal"}),
        "'error': expected a string",
    ),
    (
        "contract error without violation",
        "step",
        frame({"ok": False, "error": "x", "kind": "contract", "env": 0}),
        "needs 'env' and 'violation'",
    ),
    (
        "observation of another shape",
        "reset",
        frame({"ok": True}, {"observation": OBS[:1]}),
        "array 'observation' has shape (1, 4), expected (2, 4)",
    ),
    (
        "observation of another dtype",
        "reset",
        frame({"ok": True}, {"observation": OBS.astype(np.float64)}),
        "array 'observation' has dtype float64, expected float32",
    ),
    ("missing observation", "reset", frame({"ok": True}), "missing array 'observation'"),
    (
        "extra array",
        "reset",
        frame({"ok": True}, {"observation": OBS, "junk": np.zeros(1)}),
        "unexpected array 'junk'",
    ),
    (
        "integer flags",
        "step",
        frame({"ok": True}, {**STEP, "terminated": np.zeros(K, np.int8)}),
        "array 'terminated' has dtype int8, expected bool",
    ),
    (
        "float32 rewards",
        "step",
        frame({"ok": True}, {**STEP, "reward": np.ones(K, np.float32)}),
        "array 'reward' has dtype float32, expected float64",
    ),
    (
        "rewards of another shape",
        "step",
        frame({"ok": True}, {**STEP, "reward": np.ones(K + 1)}),
        "array 'reward' has shape (3,), expected (2,)",
    ),
    (
        "missing flag",
        "step",
        frame({"ok": True}, {k: v for k, v in STEP.items() if k != "truncated"}),
        "missing array 'truncated'",
    ),
]


def impostor_pool(tmp_path: Path, replies: list[bytes]) -> ServerPool:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([reply.hex() for reply in replies]))
    return ServerPool(
        "Impostor-v0",
        K,
        1,
        "{}",
        timeout=10.0,
        server_command=[sys.executable, IMPOSTOR, str(script)],
    )


@pytest.mark.parametrize(
    ("command", "reply", "fragment"),
    [case[1:] for case in CLIENT_CASES],
    ids=[case[0] for case in CLIENT_CASES],
)
def test_a_malformed_reply_is_a_one_line_bridge_error(tmp_path, outcome, command, reply, fragment):
    replies = [frame(DESCRIBE, BOUNDS)] if command != "describe" else []
    replies += [frame({"ok": True}, {"observation": OBS})] if command == "step" else []
    pool = impostor_pool(tmp_path, [*replies, reply])
    for earlier in ("describe", "reset")[: len(replies)]:
        pool.request(earlier)
        pool.servers[0].schema = ReplySchema(K, (4,), np.dtype(np.float32))
    arrays = [{"actions": np.zeros(K, np.int64)}] if command == "step" else None
    with pytest.raises(BridgeError) as caught:
        pool.request(command, arrays=arrays)
    first_line = str(caught.value).splitlines()[0]
    assert first_line.startswith("bridge: server 0 (pid ")
    assert f"sent a malformed reply to {command!r}: " in first_line
    assert fragment in first_line
    assert len(first_line) < 400
    outcome.refused()


def run_server(requests: list[bytes]) -> tuple[list[dict], int, str]:
    """Feed a real CartPole server `requests`; return its reply headers, exit code, stderr."""
    completed = subprocess.run(
        [*SERVER_COMMAND, "--env-id", "CartPole-v1", "--num-envs", str(K)],
        input=b"".join(requests),
        capture_output=True,
        timeout=60,
        check=False,
    )
    headers, rest = [], completed.stdout
    while rest:
        size = PREFIX.size + decode_prefix(rest[: PREFIX.size])
        headers.append(decode(rest[: PREFIX.size], rest[PREFIX.size : size])[0])
        rest = rest[size:]
    return headers, completed.returncode, completed.stderr.decode(errors="replace")


ACTIONS = {"actions": np.zeros(K, np.int64)}

# (case, malformed request, fragment of the error reply)
SERVER_CASES = [
    ("string seed", frame({"cmd": "reset", "seeds": [1, "2"]}), "seeds[1]: expected an integer"),
    ("negative seed", frame({"cmd": "reset", "seeds": [-1, 0]}), "in [0, 18446744073709551616)"),
    ("seed of 2**64", frame({"cmd": "reset", "seeds": [2**64, 0]}), "in [0, 18446744073709551616)"),
    (
        "5000-digit seed",
        raw('{"cmd":"reset","seeds":[' + "9" * 5000 + ',1],"arrays":[]}'),
        "integer of 5000 digits",
    ),
    ("nested seeds", frame({"cmd": "reset", "seeds": [[1], [2]]}), "seeds[0]: expected an integer"),
    ("deep nesting", raw('{"cmd":"reset","seeds":' + NESTED + "}"), "nests deeper"),
    ("unknown key", frame({"cmd": "step", "extra": 1}, ACTIONS), "unexpected key 'extra'"),
    ("command not a string", frame({"cmd": ["step"]}, ACTIONS), "unknown command ['step']"),
    ("no command", frame({}, ACTIONS), "unknown command None"),
    (
        "float actions",
        frame({"cmd": "step"}, {"actions": np.zeros(K)}),
        "integer dtype, got shape (2,) and dtype float64",
    ),
    (
        "too many actions",
        frame({"cmd": "step"}, {"actions": np.zeros(K + 1, np.int64)}),
        "got shape (3,)",
    ),
    (
        "huge action",
        frame({"cmd": "step"}, {"actions": np.array([0, 2**63 + 5], np.uint64)}),
        "actions[1] = 9223372036854775813 is outside Discrete(2)",
    ),
    (
        "extra array",
        frame({"cmd": "step"}, {**ACTIONS, "junk": np.zeros(1)}),
        "unexpected array 'junk'",
    ),
    (
        "absurd empty shape",
        raw('{"cmd":"step","arrays":[{"name":"actions","dtype":"<i8","shape":[0,4294967296,9]}]}'),
        "could not fit in a frame",
    ),
    (
        "40 dimensions",
        raw(
            '{"cmd":"step","arrays":[{"name":"a","dtype":"<i8","shape":['
            + ",".join(["1"] * 40)
            + "]}]}",
            b"\0" * 8,
        ),
        "at most 32 non-negative ints",
    ),
    (
        "duplicate arrays",
        raw(
            '{"cmd":"step","arrays":[{"name":"actions","dtype":"<i8","shape":[2]},'
            '{"name":"actions","dtype":"<i8","shape":[2]}]}',
            b"\0" * 32,
        ),
        "array 'actions' appears twice",
    ),
    ("header not an object", raw("[1,2,3]"), "header must be a JSON object"),
    ("close with a key", frame({"cmd": "close", "now": True}), "unexpected key 'now'"),
]


@pytest.mark.parametrize(
    ("request_frame", "fragment"),
    [case[1:] for case in SERVER_CASES],
    ids=[case[0] for case in SERVER_CASES],
)
def test_a_malformed_request_gets_an_error_reply_and_the_server_goes_on(
    outcome, request_frame, fragment
):
    requests = [
        frame({"cmd": "describe"}),
        request_frame,
        frame({"cmd": "reset", "seeds": [1, 2]}),
        frame({"cmd": "close"}),
    ]
    headers, code, stderr = run_server(requests)
    assert [h["ok"] for h in headers] == [True, False, True, True]
    assert headers[1]["kind"] == "protocol"
    assert fragment in headers[1]["error"]
    assert code == 0
    assert "Traceback" not in stderr
    outcome.refused()


def test_a_server_answers_nothing_after_close(outcome):
    requests = [frame({"cmd": "describe"}), frame({"cmd": "close"}), frame({"cmd": "describe"})]
    headers, code, stderr = run_server(requests)
    assert [h["ok"] for h in headers] == [True, True]
    assert code == 0 and "Traceback" not in stderr
    outcome.survived()

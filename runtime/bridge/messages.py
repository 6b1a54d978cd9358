"""The schemas of the bridge's messages, checked on both sides before any field is used.

`runtime.bridge.protocol` turns bytes into a frame (a JSON header and named raw arrays) and
refuses broken framing; this module says which frames are messages. The server checks every
request with `check_request`; the client checks every reply with `check_reply` against a
`ReplySchema`, which knows the server's number of environments K and, once `describe` has
answered, the observations' shape S and dtype. Checked are the keys (none missing, none
unknown), their JSON types, integer ranges, string lengths, nesting (a field holds exactly the
structure its schema names, nothing deeper) and every array's name, shape and dtype. A defect
raises `ProtocolError` naming the message and the field, e.g.
`reply to 'step': array 'reward' has shape (3,), expected (2,)`.

The checks are plain Python over a handful of keys; `docs/guides/reliability.md` has their
measured cost per step (a few microseconds, against a round trip of tens), which is why no
validation library is used: none is installed with the package, and the schemas are small.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from checked_rl.runtime.bridge.protocol import ALLOWED_DTYPES, COMMANDS, ProtocolError
from checked_rl.runtime.bridge.shared import SEGMENT_NAME

__all__ = [
    "ERROR_KINDS",
    "MAX_SEED",
    "MAX_TEXT",
    "ReplySchema",
    "check_reply",
    "check_request",
    "clip_text",
]

MAX_TEXT = 20_000
"""Characters a string of a message may have (error messages and tracebacks are cut to fit)."""

MAX_SEED = 2**64
"""Seeds lie in [0, MAX_SEED)."""

_MAX_INT64 = 2**63
ERROR_KINDS = ("protocol", "environment", "contract", "internal", "make", "close")
"""The `kind` of an error reply."""

_ERROR_FIELDS = {"env", "call", "traceback", "violation", "failures"}
_VIOLATION_KEYS = {"kind", "field", "at_step", "value", "bound"}


def clip_text(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to `limit` characters, keeping its end (a traceback's last lines matter)."""
    return text if len(text) <= limit else "..." + text[len(text) - limit + 3 :]


def _keys(where: str, record: Any, required: set[str], optional: set[str] = frozenset()) -> None:
    """`record` is a JSON object with every `required` key and no key outside `optional`."""
    if not isinstance(record, dict):
        raise ProtocolError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = sorted(required - record.keys())
    if missing:
        raise ProtocolError(f"{where}: missing key {missing[0]!r}")
    unknown = sorted(record.keys() - required - optional)
    if unknown:
        raise ProtocolError(f"{where}: unexpected key {clip_text(unknown[0], 100)!r}")


def _integer(where: str, value: Any, low: int, high: int) -> int:
    """`value` is a JSON integer in [low, high)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < high:
        shown = clip_text(repr(value), 100)
        raise ProtocolError(f"{where}: expected an integer in [{low}, {high}), got {shown}")
    return value


def _text(where: str, value: Any) -> str:
    """`value` is a JSON string of at most `MAX_TEXT` characters."""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        got = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
        raise ProtocolError(f"{where}: expected a string of at most {MAX_TEXT} characters, {got}")
    return value


def _arrays(
    where: str, arrays: dict[str, np.ndarray], expected: dict[str, tuple[tuple, np.dtype | str]]
) -> None:
    """`arrays` are exactly the `expected` names, of the expected shapes and dtypes.

    A dtype given as a string is a dtype kind ("iu": any integer dtype).
    """
    for name in sorted(arrays.keys() - expected.keys()):
        raise ProtocolError(f"{where}: unexpected array {clip_text(name, 100)!r}")
    for name, (shape, dtype) in expected.items():
        if name not in arrays:
            raise ProtocolError(f"{where}: missing array {name!r}")
        array = arrays[name]
        if array.shape != shape:
            raise ProtocolError(
                f"{where}: array {name!r} has shape {array.shape}, expected {shape}"
            )
        if array.dtype.kind not in dtype if isinstance(dtype, str) else array.dtype != dtype:
            expected_dtype = "an integer dtype" if isinstance(dtype, str) else dtype
            raise ProtocolError(
                f"{where}: array {name!r} has dtype {array.dtype}, expected {expected_dtype}"
            )


def check_request(
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
    num_envs: int,
    action_box: tuple[tuple[int, ...], np.dtype] | None = None,
    shared: bool = False,
) -> tuple[str, Any]:
    """A request of a server with `num_envs` environments, as `(command, argument)`.

    The argument is the segment name of `attach`, the seeds of `reset` (None or a list of
    `num_envs` integers in [0, MAX_SEED) or None each), the actions of `step`, else None:
    `[K]` of any integer dtype, or, for a server whose action space is a `Box` (`action_box`,
    its shape `A` and dtype), `[K, *A]` of that dtype; None for a `step` without arrays to a
    server with a `shared` segment (the actions are in the segment).
    """
    command = header.get("cmd")
    if command not in COMMANDS:
        raise ProtocolError(
            f"unknown command {clip_text(repr(command), 100)}; expected one of {list(COMMANDS)}"
        )
    where = f"request {command!r}"
    if command == "reset":
        _keys(where, header, {"cmd"}, {"seeds"})
        _arrays(where, arrays, {})
        seeds = header.get("seeds")
        if seeds is not None and not (isinstance(seeds, list) and len(seeds) == num_envs):
            raise ProtocolError(
                f"reset: expected 'seeds' to be null or a list of {num_envs} integers, "
                f"got {clip_text(repr(seeds), 200)}"
            )
        for index, seed in enumerate(seeds or []):
            if seed is not None:
                _integer(f"reset: seeds[{index}]", seed, 0, MAX_SEED)
        return command, seeds
    if command == "attach":
        _keys(where, header, {"cmd", "segment"})
        _arrays(where, arrays, {})
        segment = header["segment"]
        if not isinstance(segment, str) or not SEGMENT_NAME.fullmatch(segment):
            raise ProtocolError(
                f"attach: expected 'segment' to be a segment name ({SEGMENT_NAME.pattern}), "
                f"got {clip_text(repr(segment), 200)}"
            )
        return command, segment
    _keys(where, header, {"cmd"})
    if command == "step":
        if shared and not arrays:
            return command, None
        if "actions" not in arrays:
            raise ProtocolError("step: expected an array 'actions', got none")
        actions = arrays["actions"]
        if action_box is not None:
            _arrays(where, arrays, {"actions": ((num_envs, *action_box[0]), action_box[1])})
            return command, actions
        if actions.shape != (num_envs,) or actions.dtype.kind not in "iu":
            raise ProtocolError(
                f"step: expected 'actions' of shape ({num_envs},) and an integer dtype, "
                f"got shape {actions.shape} and dtype {actions.dtype}"
            )
        _arrays(where, arrays, {"actions": ((num_envs,), "iu")})
        return command, actions
    _arrays(where, arrays, {})
    return command, None


@dataclass(frozen=True)
class ReplySchema:
    """What a server's replies must hold.

    Attributes:
        num_envs: K, the server's number of environments.
        observation_shape, observation_dtype: the observations' S and dtype, None until
            `describe` has answered (then only `describe` and error replies are accepted).
        shared: whether the server's step results are in a shared-memory segment, so that a
            reply to `step` holds no arrays (`runtime.bridge.shared`).
    """

    num_envs: int
    observation_shape: tuple[int, ...] | None = None
    observation_dtype: np.dtype | None = None
    shared: bool = False


def check_reply(
    command: str, header: dict[str, Any], arrays: dict[str, np.ndarray], schema: ReplySchema
) -> None:
    """Check the reply to `command` against `schema`; raise `ProtocolError` naming the defect."""
    where = f"reply to {command!r}"
    ok = header.get("ok")
    if ok is False:
        _check_error(where, header, arrays, schema.num_envs)
        return
    if ok is not True:
        raise ProtocolError(f"{where}: expected 'ok' to be true or false, got {ok!r}")
    if command == "describe":
        _check_describe(where, header, arrays, schema.num_envs)
        return
    _keys(where, header, {"ok"})
    if command in ("close", "attach") or (command == "step" and schema.shared):
        _arrays(where, arrays, {})
        return
    if schema.observation_shape is None or schema.observation_dtype is None:
        raise ProtocolError(f"{where}: no reply to 'describe' was accepted before")
    k = schema.num_envs
    observations = ((k, *schema.observation_shape), schema.observation_dtype)
    expected = {"observation": observations}
    if command == "step":
        expected |= {
            "next_observation": observations,
            "reward": ((k,), np.dtype(np.float64)),
            "terminated": ((k,), np.dtype(np.bool_)),
            "truncated": ((k,), np.dtype(np.bool_)),
        }
    _arrays(where, arrays, expected)


def _check_error(where: str, header: dict[str, Any], arrays: dict, num_envs: int) -> None:
    _keys(f"{where} (an error)", header, {"ok", "error", "kind"}, _ERROR_FIELDS)
    _text(f"{where}: 'error'", header["error"])
    if header["kind"] not in ERROR_KINDS:
        raise ProtocolError(
            f"{where}: error kind {clip_text(repr(header['kind']), 100)} is not one of "
            f"{list(ERROR_KINDS)}"
        )
    if "env" in header:
        _integer(f"{where}: 'env'", header["env"], 0, num_envs)
    if "failures" in header:
        _integer(f"{where}: 'failures'", header["failures"], 1, num_envs + 1)
    for name in ("call", "traceback"):
        if name in header:
            _text(f"{where}: {name!r}", header[name])
    if header["kind"] == "contract":
        if "env" not in header or "violation" not in header:
            raise ProtocolError(f"{where}: a contract error needs 'env' and 'violation'")
        violation = header["violation"]
        _keys(f"{where}: 'violation'", violation, _VIOLATION_KEYS)
        for name in ("kind", "field", "bound"):
            _text(f"{where}: violation {name!r}", violation[name])
        if not isinstance(violation["at_step"], bool):
            raise ProtocolError(f"{where}: violation 'at_step' must be true or false")
        value = violation["value"]
        if isinstance(value, list):
            for index, size in enumerate(value):
                _integer(f"{where}: violation value[{index}]", size, 0, _MAX_INT64)
        else:
            _text(f"{where}: violation 'value'", value)
    _arrays(where, arrays, {})


def _check_describe(where: str, header: dict[str, Any], arrays: dict, num_envs: int) -> None:
    _keys(where, header, {"ok", "name", "num_envs", "observation_space", "action_space"})
    _text(f"{where}: 'name'", header["name"])
    if header["num_envs"] != num_envs or isinstance(header["num_envs"], bool):
        shown = clip_text(repr(header["num_envs"]), 100)
        raise ProtocolError(f"{where}: 'num_envs' is {shown}, expected {num_envs}")
    observation = _check_space(f"{where}: 'observation_space'", header["observation_space"])
    action = _check_space(f"{where}: 'action_space'", header["action_space"])
    expected = {}
    if observation is not None:
        expected = {"low": observation, "high": observation}
    if action is not None:
        expected |= {"action_low": action, "action_high": action}
    _arrays(where, arrays, expected)


def _check_space(where: str, space: Any) -> tuple[tuple[int, ...], np.dtype] | None:
    """Check a space record; return a `Box`'s (shape, dtype) for its bound arrays."""
    if not isinstance(space, dict):
        raise ProtocolError(f"{where}: expected a JSON object, got {type(space).__name__}")
    kind = _text(f"{where}: 'type'", space.get("type"))
    if kind == "Box":
        _keys(where, space, {"type", "shape", "dtype"})
        shape = space["shape"]
        if not isinstance(shape, list) or len(shape) > 32:
            raise ProtocolError(f"{where}: 'shape' must be a list of at most 32 sizes")
        sizes = tuple(_integer(f"{where}: shape[{i}]", n, 0, 2**31) for i, n in enumerate(shape))
        if space["dtype"] not in ALLOWED_DTYPES:
            shown = clip_text(repr(space["dtype"]), 100)
            raise ProtocolError(f"{where}: dtype {shown} is not one of {sorted(ALLOWED_DTYPES)}")
        return sizes, np.dtype(space["dtype"])
    if kind == "Discrete":
        _keys(where, space, {"type", "n", "start"})
        _integer(f"{where}: 'n'", space["n"], 1, _MAX_INT64)
        _integer(f"{where}: 'start'", space["start"], -_MAX_INT64, _MAX_INT64)
        return None
    _keys(where, space, {"type"})
    return None

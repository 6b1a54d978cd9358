"""The wire format of the Gymnasium bridge: framed messages, JSON headers, raw arrays.

A frame is

    prefix   16 bytes  magic b"CRLB", version (u8), 3 zero bytes,
                       header length (u32 LE), payload length (u32 LE)
    header   JSON, UTF-8: {"cmd" or "ok", ..., "arrays": [{"name", "dtype", "shape"}, ...]}
    payload  the arrays' raw little-endian bytes, one after the other, in header order

The magic and version let either side tell a frame from garbage (a stray `print`, a different
program on the pipe) at the first byte; both lengths are bounded (`MAX_HEADER_BYTES`,
`MAX_FRAME_BYTES`) so a corrupt length cannot make a reader allocate or wait for gigabytes.
Numbers travel as raw arrays of a few allowed dtypes, never as pickle (unpickling runs code) and
never as JSON lists (slow for a batch of observations). Every decoding problem raises
`ProtocolError`, a `ValueError` whose message says what was expected and what came.

Requests (client to server) and their replies:

- `describe`: reply `{"ok": true, "num_envs", "observation_space", "action_space"}`, each space
  a JSON record with its `type` (Gymnasium class name) and, for a `Box`, `shape`, `dtype` and the
  arrays `low`, `high` (`action_low`, `action_high` for the action space); for a `Discrete`,
  `n` and `start`.
- `attach`: header `segment`, the name of a shared-memory segment laid out by
  `runtime.bridge.shared.layout`; reply `{"ok": true}`. From then on a `step` request without
  arrays takes its actions from the segment and its reply, without arrays, leaves the results
  there (`runtime.bridge.shared` has the sequence).
- `reset`: header `seeds` (a list of K integers, or null); reply array `observation` `[K, *S]`.
- `step`: array `actions`, `[K]` int64 (a `Discrete` action space) or `[K, *A]` of the
  action `Box`'s dtype, finite and clipped into the box (a `Box` action space); reply arrays
  `next_observation` `[K, *S]` (true successors), `reward` `[K]` float64, `terminated`,
  `truncated` `[K]` bool and `observation` `[K, *S]` (after the same-step auto-reset of the
  finished copies).
- `close`: reply `{"ok": true}`; the server then exits with code 0.

A request that cannot be served gets `{"ok": false, "error": "...", "kind": "..."}`.
"""

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "ALLOWED_DTYPES",
    "BARE_REQUESTS",
    "COMMANDS",
    "MAGIC",
    "MAX_DIMENSIONS",
    "MAX_FRAME_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_INTEGER_DIGITS",
    "OK_FRAME",
    "PREFIX",
    "VERSION",
    "Message",
    "ProtocolError",
    "decode_body",
    "decode_prefix",
    "encode_frame",
]

MAGIC = b"CRLB"
VERSION = 1
PREFIX = struct.Struct("<4sB3xII")
MAX_HEADER_BYTES = 1 << 20
MAX_FRAME_BYTES = 1 << 28
MAX_INTEGER_DIGITS = 20
"""Digits an integer of a header may have (2**64 has 20): a 5000-digit one is refused."""
MAX_DIMENSIONS = 32
"""Dimensions an array of a frame may have."""
COMMANDS = ("describe", "attach", "reset", "step", "close")
_WIRE_DTYPES = {
    np.dtype(name).newbyteorder("<").str: np.dtype(name).newbyteorder("<")
    for name in (
        "bool",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "float32",
        "float64",
    )
}
ALLOWED_DTYPES = frozenset(_WIRE_DTYPES)


class ProtocolError(ValueError):
    """A frame or message that does not follow the bridge's wire format."""


Message = tuple[dict[str, Any], dict[str, np.ndarray]]


def encode_frame(
    header: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None
) -> bytes:
    """One frame carrying the JSON `header` and the named `arrays` (sent little-endian, raw).

    >>> frame = encode_frame({"cmd": "step"}, {"actions": np.array([1, 0])})
    >>> frame[:4], len(frame) == PREFIX.size + decode_prefix(frame[:PREFIX.size])
    (b'CRLB', True)
    """
    records = []
    chunks = []
    for name, value in (arrays or {}).items():
        array = np.asarray(value)
        wire = array.dtype.newbyteorder("<")
        if wire.str not in ALLOWED_DTYPES:
            raise ProtocolError(
                f"array {name!r}: dtype {array.dtype} cannot be sent; "
                f"expected one of {sorted(ALLOWED_DTYPES)}"
            )
        array = np.asarray(array, dtype=wire, order="C")
        records.append({"name": name, "dtype": wire.str, "shape": array.shape})
        chunks.append(array.tobytes())
    body = dict(header)
    body["arrays"] = records
    header_bytes = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    payload_size = sum(len(chunk) for chunk in chunks)
    if len(header_bytes) > MAX_HEADER_BYTES or _frame_size(len(header_bytes), payload_size) > (
        MAX_FRAME_BYTES
    ):
        raise ProtocolError(
            f"message too large: header {len(header_bytes)} bytes (max {MAX_HEADER_BYTES}), "
            f"payload {payload_size} bytes (frame max {MAX_FRAME_BYTES})"
        )
    prefix = PREFIX.pack(MAGIC, VERSION, len(header_bytes), payload_size)
    return b"".join([prefix, header_bytes, *chunks])


def decode_prefix(prefix: bytes) -> int:
    """Check a frame's 16-byte prefix; return the number of bytes that follow it.

    >>> decode_prefix(b"hello, world! ok")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    checked_rl.runtime.bridge.protocol.ProtocolError: bad frame: expected magic b'CRLB' ...
    """
    if len(prefix) != PREFIX.size:
        raise ProtocolError(f"bad frame: expected a {PREFIX.size}-byte prefix, got {len(prefix)}")
    magic, version, header_size, payload_size = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(
            f"bad frame: expected magic {MAGIC!r} at the start of a frame, got {prefix!r} "
            "(is something else writing to the channel?)"
        )
    if version != VERSION:
        raise ProtocolError(f"bad frame: expected protocol version {VERSION}, got {version}")
    if header_size > MAX_HEADER_BYTES:
        raise ProtocolError(
            f"bad frame: header of {header_size} bytes exceeds the maximum {MAX_HEADER_BYTES}"
        )
    if _frame_size(header_size, payload_size) > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"bad frame: frame of {_frame_size(header_size, payload_size)} bytes exceeds "
            f"the maximum {MAX_FRAME_BYTES}"
        )
    return header_size + payload_size


def decode_body(prefix: bytes, body: bytes) -> Message:
    """Decode the header and arrays that follow `prefix`; return `(header, arrays)`.

    >>> frame = encode_frame({"ok": True}, {"reward": np.array([1.0, 0.5])})
    >>> header, arrays = decode_body(frame[:PREFIX.size], frame[PREFIX.size:])
    >>> header, arrays["reward"].tolist()
    ({'ok': True}, [1.0, 0.5])
    """
    _, _, header_size, payload_size = PREFIX.unpack(prefix)
    if len(body) != header_size + payload_size:
        raise ProtocolError(
            f"bad frame: expected {header_size + payload_size} bytes after the prefix, "
            f"got {len(body)}"
        )
    try:
        header = json.loads(
            body[:header_size].decode(), parse_constant=_reject_constant, parse_int=_parse_int
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"bad frame: header is not UTF-8 JSON ({error})") from None
    except RecursionError:
        raise ProtocolError("bad frame: header nests deeper than the decoder allows") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"bad frame: header must be a JSON object, got {type(header).__name__}")
    records = header.pop("arrays", [])
    if not isinstance(records, list):
        raise ProtocolError(f"bad frame: 'arrays' must be a list, got {type(records).__name__}")
    payload = memoryview(body)[header_size:]
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for record in records:
        name, dtype, shape = _array_record(record)
        if name in arrays:
            raise ProtocolError(f"bad frame: array {name!r} appears twice")
        size = dtype.itemsize * math.prod(shape)
        if offset + size > payload_size:
            raise ProtocolError(
                f"bad frame: array {name!r} of shape {shape} and dtype {dtype} needs {size} bytes "
                f"at offset {offset}, but the payload has {payload_size}"
            )
        arrays[name] = np.frombuffer(payload[offset : offset + size], dtype=dtype).reshape(shape)
        offset += size
    if offset != payload_size:
        raise ProtocolError(
            f"bad frame: arrays account for {offset} payload bytes, the prefix says {payload_size}"
        )
    return header, arrays


def _array_record(record: object) -> tuple[str, np.dtype, tuple[int, ...]]:
    """Validate one `{"name", "dtype", "shape"}` record of a header."""
    if not isinstance(record, dict) or set(record) != {"name", "dtype", "shape"}:
        raise ProtocolError(
            "bad frame: expected an array record {'name', 'dtype', 'shape'}, "
            f"got {_clip(repr(record))}"
        )
    name, dtype_name, shape = record["name"], record["dtype"], record["shape"]
    if not isinstance(name, str):
        raise ProtocolError(f"bad frame: array name must be a string, got {_clip(repr(name))}")
    if not isinstance(dtype_name, str) or dtype_name not in ALLOWED_DTYPES:
        raise ProtocolError(
            f"bad frame: array {name!r} has dtype {_clip(repr(dtype_name))}; "
            f"expected one of {sorted(ALLOWED_DTYPES)}"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMENSIONS
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in shape)
    ):
        raise ProtocolError(
            f"bad frame: array {name!r} shape must be a list of at most {MAX_DIMENSIONS} "
            f"non-negative ints, got {_clip(repr(shape))}"
        )
    dtype = _WIRE_DTYPES[dtype_name]
    if math.prod(max(n, 1) for n in shape) * dtype.itemsize > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"bad frame: array {name!r} of shape {_clip(repr(tuple(shape)))} could not fit in a "
            f"frame of {MAX_FRAME_BYTES} bytes even with its empty axes filled"
        )
    return name, dtype, tuple(shape)


def _parse_int(text: str) -> int:
    """A JSON integer of at most `MAX_INTEGER_DIGITS` digits."""
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ProtocolError(
            f"bad frame: header holds an integer of {len(text.lstrip('-'))} digits; "
            f"at most {MAX_INTEGER_DIGITS} are allowed"
        )
    return int(text)


def _clip(text: str, limit: int = 200) -> str:
    """`text`, cut to `limit` characters for a message."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _reject_constant(name: str) -> None:
    """JSON's non-finite extensions (NaN, Infinity) are not part of the protocol."""
    raise ProtocolError(f"bad frame: header contains the non-finite number {name}")


def _frame_size(header_size: int, payload_size: int) -> int:
    return PREFIX.size + header_size + payload_size


OK_FRAME = encode_frame({"ok": True})
"""The frame of a reply without fields or arrays (a step's with a shared segment)."""

BARE_REQUESTS = {command: encode_frame({"cmd": command}) for command in COMMANDS}
"""The frame of each request without fields or arrays."""

"""A server's end of the bridge's framed channel, kept apart from what environments print.

Simulators print: an environment that writes to file descriptor 1 (Python `print`, or C code
calling `printf`) must not corrupt the channel, so `claim_channel` keeps private duplicates of
descriptors 0 and 1 for the protocol and points descriptor 1 at standard error and descriptor 0
at `/dev/null` (see `runtime.bridge.server`).
"""

import os
import sys
from typing import BinaryIO

from checked_rl.runtime.bridge.protocol import ProtocolError

__all__ = ["claim_channel", "read_exact"]


def read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """Read exactly `size` bytes; None at end of file before the first byte."""
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if remaining == size:
                return None
            raise ProtocolError(f"bad frame: stream ended {remaining} bytes short of {size}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def claim_channel() -> tuple[BinaryIO, BinaryIO]:
    """Keep descriptors 0 and 1 for the protocol; send later prints to stderr."""
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb", buffering=0)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return channel_in, channel_out

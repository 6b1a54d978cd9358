"""The bridge's shared-memory transport: a step's arrays in one segment per server.

Through the pipe, every step's actions and results travel as copies inside frames (a JSON header
naming five arrays, their raw bytes, decoded and checked on the other side). With shared memory,
the client and a server map the same segment, laid out by `layout` from the server's number of
environments K and the spaces, and a step is:

    client  writes the actions into the segment, sends the frame {"cmd": "step"} (no arrays);
    server  reads the actions, steps, writes next_observation, observation, reward, terminated
            and truncated into the segment, replies {"ok": true} (no arrays);
    client  copies the results out (the next step overwrites them).

The framed channel stays for every command, error reply and as the synchronisation: each side
touches the segment only between the frames that hand it over, so nothing ever waits by
spinning. Errors still arrive as error replies, and every reply is still checked against its
schema (`runtime.bridge.messages`); the arrays' shapes and dtypes are fixed by the layout, and
the client checks that the flags hold 0 or 1 (a bool array is a byte array to a server).

Segments are POSIX shared memory (`multiprocessing.shared_memory`), created by the client, which
sends each server its segment's name in an `attach` request and removes the name (`unlink`) as
soon as every server has attached: from then on nothing is left to leak, whatever ends which
process. Before that, the client removes the names on every error and in `ServerProcess.kill`
(so also when a server crashes or is killed), and if the client itself dies, Python's resource
tracker, which `multiprocessing.shared_memory` registers every created segment with, removes
them. A server's attachment is not registered (the segment is the client's to remove), and
starts no resource tracker of its own.
"""

import math
import mmap
import os
import re
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

__all__ = ["ALIGNMENT", "SEGMENT_NAME", "SHM_DIRECTORY", "SharedArrays", "layout"]

ALIGNMENT = 64
"""Every array of a segment starts at a multiple of this many bytes (a cache line)."""

SHM_DIRECTORY = "/dev/shm"
"""Where Linux keeps POSIX shared-memory segments, as files named like the segments."""

SEGMENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
"""What a segment name in an `attach` request may look like."""

Layout = dict[str, tuple[int, tuple[int, ...], np.dtype]]


def layout(
    num_envs: int,
    observation: tuple[tuple[int, ...], np.dtype],
    action: tuple[tuple[int, ...], np.dtype] | None,
) -> tuple[Layout, int]:
    """The arrays of a segment for `num_envs` environments, as `{name: (offset, shape, dtype)}`,
    and the segment's size in bytes.

    `observation` and `action` are `(shape, dtype)` of one observation and one `Box` action;
    `action` None means a `Discrete` action space (int64 actions).

    >>> arrays, size = layout(2, ((4,), np.dtype("float32")), None)
    >>> arrays["reward"], size
    ((192, (2,), dtype('float64')), 384)
    """
    action_shape, action_dtype = action if action is not None else ((), np.dtype(np.int64))
    fields = {
        "actions": ((num_envs, *action_shape), np.dtype(action_dtype)),
        "next_observation": ((num_envs, *observation[0]), np.dtype(observation[1])),
        "observation": ((num_envs, *observation[0]), np.dtype(observation[1])),
        "reward": ((num_envs,), np.dtype(np.float64)),
        "terminated": ((num_envs,), np.dtype(np.bool_)),
        "truncated": ((num_envs,), np.dtype(np.bool_)),
    }
    arrays: Layout = {}
    offset = 0
    for name, (shape, dtype) in fields.items():
        arrays[name] = (offset, shape, dtype)
        size = math.prod(shape) * dtype.itemsize
        offset += -(-size // ALIGNMENT) * ALIGNMENT
    return arrays, max(offset, ALIGNMENT)


class SharedArrays:
    """The arrays of one segment, as NumPy views.

    Create one with `SharedArrays.create` (the client) or `SharedArrays.attach` (a server).

    Attributes:
        name: the segment's name.
        arrays: `{name: array}`, views into the segment, in the shapes of `layout`.
        unlinked: whether the segment's name is removed already (always, for an attachment).
    """

    def __init__(self, name: str, buffer: Any, arrays: Layout, owner: SharedMemory | None) -> None:
        self.name = name
        self.arrays = {
            name: np.ndarray(shape, dtype, buffer=buffer, offset=offset)
            for name, (offset, shape, dtype) in arrays.items()
        }
        self.unlinked = owner is None
        self._owner = owner
        self._mapping = buffer

    @classmethod
    def create(cls, arrays: Layout, size: int) -> "SharedArrays":
        """A new segment of `size` bytes, zeroed, owned by this process (which must `release`
        it); registered with the resource tracker until `unlink`."""
        segment = SharedMemory(create=True, size=size)
        return cls(segment.name, segment.buf, arrays, segment)

    @classmethod
    def attach(cls, name: Any, arrays: Layout, size: int) -> "SharedArrays":
        """Map the existing segment `name`, which must hold `size` bytes; the creator owns it.

        Where POSIX segments are files under /dev/shm (Linux), the file is mapped directly;
        elsewhere through `SharedMemory`, whose registration with this process's resource
        tracker is withdrawn (it would remove the client's segment when this process ends).

        Raises:
            ValueError: `name` is not a segment name, or the segment is smaller than `size`.
            OSError: there is no such segment, or it cannot be mapped.
        """
        if not isinstance(name, str) or not SEGMENT_NAME.fullmatch(name):
            raise ValueError(f"expected a shared-memory segment name, got {name!r:.200}")
        if os.path.isdir(SHM_DIRECTORY):
            descriptor = os.open(os.path.join(SHM_DIRECTORY, name), os.O_RDWR)
            try:
                found = os.fstat(descriptor).st_size
                mapping = mmap.mmap(descriptor, found) if found >= size else None
            finally:
                os.close(descriptor)
        else:  # pragma: no cover - systems without /dev/shm (macOS)
            segment = SharedMemory(name)
            resource_tracker.unregister(f"/{segment.name}", "shared_memory")
            found, mapping = segment.size, segment.buf if segment.size >= size else None
        if mapping is None:
            raise ValueError(
                f"shared-memory segment {name!r} holds {found} bytes, expected {size}"
            )
        return cls(name, mapping, arrays, None)

    def unlink(self) -> None:
        """Remove the segment's name (the client's, once every server has attached); the
        mappings stay valid. Does nothing the second time."""
        if not self.unlinked:
            self.unlinked = True
            try:
                self._owner.unlink()
            except FileNotFoundError:
                pass

    def release(self) -> None:
        """`unlink` (if this process owns the segment), then unmap it."""
        self.unlink()
        self.arrays = {}
        try:
            self._owner.close() if self._owner is not None else self._mapping.close()
        except BufferError:
            pass  # a view is still held somewhere: the mapping goes with the process

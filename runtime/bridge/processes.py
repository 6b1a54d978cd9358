"""The bridge's processes: starting servers, talking to them with deadlines, killing them.

A `ServerPool` starts `python -m checked_rl.runtime.bridge.server` processes with the same Python
and an environment that can import this package (our `sys.path` on `PYTHONPATH`), in their own
session so that a Ctrl-C in a terminal reaches only the client, which then kills them. It sends a
request to every server, then reads every reply, so servers work in parallel. Every read and write
waits on a selector with a deadline, never in a blocking call without one. A thread per server keeps
the last lines of its stderr. A server that crashes, hangs, exits or sends garbage becomes a
`BridgeError` carrying its exit code and that stderr tail, and every server is killed. Processes
never outlive the pool: `close` stops them, a finaliser kills them if the caller forgets `close`,
and an interrupt (`KeyboardInterrupt`) during a read kills them before it propagates; each time
the server's whole process group goes, so what its environments started goes too. A client
killed outright leaves nothing behind either (`runtime.bridge.lifeline`). Every reply is checked
against its schema (`runtime.bridge.messages`) before use; a malformed one is a `BridgeError`
naming the server, the request and the defect. """

import collections
import os
import selectors
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import IO, Any

import numpy as np

from checked_rl.runtime.bridge.lifeline import CLIENT_VARIABLE, end_server_group
from checked_rl.runtime.bridge.messages import ReplySchema, check_reply
from checked_rl.runtime.bridge.protocol import (
    BARE_REQUESTS,
    OK_FRAME,
    PREFIX,
    Message,
    ProtocolError,
    decode_body,
    decode_prefix,
    encode_frame,
)

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "SERVER_COMMAND",
    "STDERR_TAIL_LINES",
    "BridgeError",
    "ServerPool",
    "ServerProcess",
]

DEFAULT_TIMEOUT = 30.0
"""Seconds a request may take before its server counts as hung."""

DEFAULT_STARTUP_TIMEOUT = 60.0
"""Seconds a new server may take to answer its first request (imports, `gymnasium.make`)."""

STDERR_TAIL_LINES = 20
"""Lines of a server's stderr kept for error messages."""

STDERR_LINE_BYTES = 1000
"""Longer stderr lines are kept in pieces of this size."""

SHUTDOWN_GRACE = 2.0
"""Seconds a server gets to exit after `close` or after closing its channel."""

READ_CHUNK = 1 << 16
"""Bytes asked for in one read of a server's output."""

SERVER_COMMAND = (sys.executable, "-m", "checked_rl.runtime.bridge.server")
"""The server program: this very Python, running the server module."""


class BridgeError(RuntimeError):
    """A server of the Gymnasium bridge failed: it crashed, hung, exited or broke the protocol.

    Attributes:
        exit_code: the server's exit code where it is known (negative: killed by that signal).
        stderr_tail: the last lines the server wrote to its stderr.
    """

    def __init__(
        self, message: str, *, exit_code: int | None = None, stderr_tail: Sequence[str] = ()
    ) -> None:
        self.summary = message
        self.exit_code = exit_code
        self.stderr_tail = tuple(stderr_tail)
        if self.stderr_tail:
            message += "\nlast lines of its stderr:\n" + "\n".join(
                f"  {line}" for line in self.stderr_tail
            )
        super().__init__(message)


class _ChannelClosed(Exception):
    """The server closed its end of the channel."""


class _DeadlinePassed(Exception):
    """A read or write did not finish before its deadline."""


class ServerProcess:
    """One server process: its pipes, a thread keeping its stderr tail, deadline-bound I/O.

    Args:
        index: the server's position in its pool (for messages).
        env_id, num_envs, make_kwargs_json: passed on the server's command line.
        server_command: the program, before its arguments (tests replace it with impostors).
        first_env: the global index of the server's first environment (for messages).
    """

    def __init__(
        self,
        index: int,
        env_id: str,
        num_envs: int,
        first_env: int,
        make_kwargs_json: str,
        server_command: Sequence[str] = SERVER_COMMAND,
    ) -> None:
        self.index = index
        self.first_env = first_env
        self.num_envs = num_envs
        self.schema = ReplySchema(num_envs)
        self.shared: Any = None
        """The server's `runtime.bridge.shared.SharedArrays`, if it has one; `kill` releases it."""
        arguments = ["--env-id", env_id, "--num-envs", str(num_envs)]
        self.process = subprocess.Popen(
            [*server_command, *arguments, "--make-kwargs", make_kwargs_json],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_environment(),
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._drainer = threading.Thread(
            target=_drain, args=(self.process.stderr, self.tail), daemon=True
        )
        self._drainer.start()
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._buffer = bytearray()
        self._selectors = {}
        for fd, event in ((self._in, selectors.EVENT_WRITE), (self._out, selectors.EVENT_READ)):
            self._selectors[fd] = selectors.DefaultSelector()
            self._selectors[fd].register(fd, event)

    @property
    def name(self) -> str:
        """`server 1 (envs 4..7)`, for messages."""
        last = self.first_env + self.num_envs - 1
        return f"server {self.index} (pid {self.pid}, envs {self.first_env}..{last})"

    def send(self, frame: bytes, deadline: float) -> None:
        """Write `frame` completely before `deadline`."""
        view = memoryview(frame)
        while view:
            try:
                written = os.write(self._in, view)
            except BlockingIOError:
                written = 0
            except (BrokenPipeError, ValueError, OSError) as error:
                raise _ChannelClosed from error
            view = view[written:]
            if view:
                self._wait(self._in, deadline)

    def receive(self, deadline: float) -> Message:
        """Read one frame before `deadline`; return its header and arrays."""
        prefix = self._read(PREFIX.size, deadline)
        body = self._read(decode_prefix(prefix), deadline)
        if prefix + body == OK_FRAME:  # the usual reply, as `decode_body` would give it
            return {"ok": True}, {}
        return decode_body(prefix, body)

    def failure(self, summary: str, *, kill: bool) -> BridgeError:
        """A `BridgeError` for this server with its exit code and stderr tail (after `kill`)."""
        self.kill(0.0 if kill else SHUTDOWN_GRACE)
        self._drainer.join(SHUTDOWN_GRACE)
        code = self.process.returncode
        return BridgeError(
            f"bridge: {self.name} {summary}; exit code {code}",
            exit_code=code,
            stderr_tail=list(self.tail),
        )

    def stop(self, frame: bytes, timeout: float) -> tuple[int, str, int] | None:
        """Ask the server to close, then end its process group; return, where environments'
        `close()` raised, the first one's global index, what it raised and how many did."""
        error = None
        if self.process.returncode is None:
            try:
                deadline = time.monotonic() + timeout
                self.send(frame, deadline)
                header, arrays = self.receive(deadline)
                check_reply("close", header, arrays, self.schema)
                if header["ok"] is False and header["kind"] == "close":
                    env = self.first_env + header.get("env", 0)
                    error = (env, header["error"], header.get("failures", 1))
            except (_ChannelClosed, _DeadlinePassed, ProtocolError):
                pass
        self.kill()
        return error

    def kill(self, grace: float = 0.0) -> None:
        """End the server's process group (after up to `grace` seconds for the server to exit
        by itself), reap the server and close the pipes."""
        end_server_group(self.process, grace)
        for selector in self._selectors.values():
            selector.close()
        if self.shared is not None:
            self.shared.release()

    def _read(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._wait(self._out, deadline)
            try:
                chunk = os.read(self._out, max(READ_CHUNK, size - len(self._buffer)))
            except BlockingIOError:
                continue
            except (ValueError, OSError) as error:
                raise _ChannelClosed from error
            if not chunk:
                raise _ChannelClosed
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _wait(self, fd: int, deadline: float) -> None:
        """Block until `fd` is ready for its direction (write for input, read for output)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlinePassed
        if not self._selectors[fd].select(remaining):
            raise _DeadlinePassed


class ServerPool:
    """Servers hosting N environments together, as evenly as possible, stepped in parallel.

    Args:
        env_id: a Gymnasium id, also `module:Name-vN` (the module must be importable from the
            current directory or `sys.path`, which the servers inherit through `PYTHONPATH`).
        num_envs: N, the total number of environments.
        num_servers: how many processes share them (at most N).
        make_kwargs_json: a JSON object of keyword arguments for `gymnasium.make`.
        server_command: the server program, before its arguments (default: this Python running
            `runtime.bridge.server`).
        timeout: seconds any single request may take before its server counts as hung.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        num_servers: int,
        make_kwargs_json: str,
        timeout: float,
        server_command: Sequence[str] = SERVER_COMMAND,
    ) -> None:
        if not 1 <= num_servers <= num_envs:
            raise ValueError(
                f"bridge: expected 1 <= num_servers <= num_envs = {num_envs}, got {num_servers}"
            )
        if not timeout > 0:
            raise ValueError(f"bridge: expected a positive timeout in seconds, got {timeout}")
        self.timeout = float(timeout)
        self.servers: list[ServerProcess] = []
        self._finalizer = weakref.finalize(self, _kill_all, self.servers)
        sizes = [len(part) for part in np.array_split(np.arange(num_envs), num_servers)]
        first = 0
        try:
            for index, size in enumerate(sizes):
                self.servers.append(
                    ServerProcess(index, env_id, size, first, make_kwargs_json, server_command)
                )
                first += size
        except OSError as error:
            self.kill()
            raise BridgeError(
                f"bridge: could not start server {len(self.servers)} with {list(server_command)}: "
                f"{error}"
            ) from error
        except BaseException:
            self.kill()
            raise
        self.closed = False

    @property
    def slices(self) -> list[slice]:
        """The global environment indices of each server."""
        return [slice(s.first_env, s.first_env + s.num_envs) for s in self.servers]

    def request(
        self,
        command: str,
        headers: Sequence[dict[str, Any]] | None = None,
        arrays: Sequence[dict[str, np.ndarray]] | None = None,
        timeout: float | None = None,
    ) -> list[Message]:
        """Send `command` to every server, then read every reply (in server order).

        Per-server `headers` and `arrays` extend the request; `timeout` replaces the pool's for
        this request (for the first one, which waits for the servers to start). A hard failure
        (timeout, exit, malformed reply) or an interrupt kills every server and raises
        `BridgeError` (or lets the interrupt through); error replies are returned for the caller
        to judge.
        """
        if self.closed:
            raise BridgeError(f"bridge: cannot send {command!r}, the session's servers are closed")
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        server = self.servers[0]
        try:
            for position, server in enumerate(self.servers):
                if headers or arrays:
                    header = {"cmd": command, **(headers[position] if headers else {})}
                    frame = encode_frame(header, arrays[position] if arrays else None)
                else:
                    frame = BARE_REQUESTS[command]
                server.send(frame, deadline)
            replies = []
            for server in self.servers:
                header, arrays = server.receive(deadline)
                check_reply(command, header, arrays, server.schema)
                replies.append((header, arrays))
            return replies
        except _DeadlinePassed:
            error = server.failure(
                f"did not answer {command!r} within {timeout:g} s and was killed", kill=True
            )
        except _ChannelClosed:
            error = server.failure(f"closed its channel during {command!r}", kill=False)
        except ProtocolError as bad:
            defect = str(bad).removeprefix(f"reply to {command!r}: ")
            error = server.failure(f"sent a malformed reply to {command!r}: {defect}", kill=True)
        except BaseException:
            self.kill()
            raise
        self.kill()
        raise error

    def close(self) -> list[tuple[int, str, int]]:
        """Stop every server politely (close request, then end its process group); return,
        per server where environments' `close()` raised, `ServerProcess.stop`'s report."""
        errors = []
        if not self.closed:
            frame = BARE_REQUESTS["close"]
            for server in self.servers:
                error = server.stop(frame, min(self.timeout, SHUTDOWN_GRACE))
                if error is not None:
                    errors.append(error)
            self.closed = True
            self._finalizer.detach()
        return errors

    def kill(self) -> None:
        """Kill every server now."""
        self.closed = True
        _kill_all(self.servers)
        self._finalizer.detach()

    @property
    def pids(self) -> list[int]:
        """The process ids of the servers (for tests that check none survives)."""
        return [server.pid for server in self.servers]


def _kill_all(servers: Iterable[ServerProcess]) -> None:
    """Kill every server; used by `close`, on errors and by the finaliser (holds no session)."""
    for server in servers:
        server.kill()


def _drain(stream: IO[bytes], tail: collections.deque[str]) -> None:
    """Keep the last lines of a server's stderr until it closes."""
    with stream:
        for line in iter(lambda: stream.readline(STDERR_LINE_BYTES), b""):
            tail.append(line.decode(errors="replace").rstrip())


def _child_environment() -> dict[str, str]:
    """The environment of a server: ours, with our `sys.path` on `PYTHONPATH`."""
    environment = dict(os.environ)
    paths = [os.getcwd(), *(path for path in sys.path if path)]
    if environment.get("PYTHONPATH"):
        paths.append(environment["PYTHONPATH"])
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    environment[CLIENT_VARIABLE] = str(os.getpid())
    return environment

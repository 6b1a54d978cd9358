"""A bridge server's lifeline: it and everything it started end with its client.

Three mechanisms, each for a way the client can go:

- the client closes the session: it asks for `close`, then kills the server's process group
  (the server is started as the leader of a new session, so every process an environment starts,
  and their children, are in that group unless they leave it on purpose);
- the client dies between requests: the server reads end of file on its input and ends its
  group (`end_group`);
- the client dies while the server is busy (inside a long `step`, where nobody reads the
  input): `watch_client`, a daemon thread, polls the parent process id every `WATCH_INTERVAL`
  seconds and ends the group as soon as the parent is no longer the client that started it.

Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`) was considered and not used: it fires
when the *thread* that started the child exits, so a client that creates its session in a
worker thread would lose its servers when that thread ends, and it would kill only the server,
not its group. The watchdog works on every POSIX system and ends the whole group. A process
that leaves the group on purpose (`setsid`, a daemon) escapes all three; ending it would take
a cgroup, which needs privileges this package does not assume.
"""

import os
import signal
import subprocess
import threading
import time

__all__ = [
    "CLIENT_VARIABLE",
    "WATCH_INTERVAL",
    "end_group",
    "end_server_group",
    "watch_client",
]

WATCH_INTERVAL = 0.1
"""Seconds between two looks at the parent process id (the delay before an orphan ends)."""

CLIENT_VARIABLE = "CHECKED_RL_BRIDGE_CLIENT"
"""The environment variable in which the client gives a server its own process id."""


def end_group() -> None:
    """Kill this process's group (this process included) if it leads it, else this process.

    A server started by hand, in a shell's group, must not kill the shell: it only ends itself.
    """
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def watch_client(interval: float = WATCH_INTERVAL) -> threading.Thread:
    """Start the daemon thread that ends this process's group once its client is gone.

    The client is the process named in `CLIENT_VARIABLE` (so that a client that died before
    this call is noticed too), else the parent at the time of the call.
    """
    named = os.environ.get(CLIENT_VARIABLE, "")
    client = int(named) if named.isdigit() else os.getppid()

    def watch() -> None:
        while os.getppid() == client:
            time.sleep(interval)
        end_group()

    thread = threading.Thread(target=watch, name="bridge-client-watch", daemon=True)
    thread.start()
    return thread


def end_server_group(process: subprocess.Popen, grace: float) -> None:
    """Kill the process group that `process` leads, reap `process`, close its pipes.

    The group is killed while `process` is still unreaped (running, or a zombie after up to
    `grace` seconds of waiting for it to exit with its own code), so its id cannot have been
    reused and the group holds only what it started.
    """
    if process.returncode is None:
        deadline = time.monotonic() + grace
        while not _exited(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


def _exited(pid: int) -> bool:
    """Whether child `pid` has exited, without reaping it."""
    try:
        status = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return status is not None

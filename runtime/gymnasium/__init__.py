"""Gymnasium environments in subprocesses, behind a small framed protocol (the bridge).

- `runtime.gymnasium.protocol`: the wire format (framed messages, raw arrays, no pickle).
- `runtime.gymnasium.server`: `python -m runtime.gymnasium.server`, K environments per process.
- `runtime.gymnasium.processes`: starting servers, deadline-bound I/O with them, killing them;
  `BridgeError`, raised when a server crashes, hangs or breaks the protocol.
- `runtime.gymnasium.client`: `SubprocessSession`, a checked session over several servers.

The names of the client are exported lazily, so that a server process does not import PyTorch.
"""

from typing import Any

__all__ = ["BridgeError", "SubprocessSession"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from runtime.gymnasium import client

        return getattr(client, name)
    raise AttributeError(f"module 'runtime.gymnasium' has no attribute {name!r}")

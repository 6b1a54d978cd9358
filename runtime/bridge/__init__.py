"""The bridge: Gymnasium environments in server processes, behind a small framed protocol.

- `protocol`: the wire format (framed messages, raw arrays, no pickle).
- `server`: `python -m checked_rl.runtime.bridge.server`, K environments per process.
- `processes`: starting servers, deadline-bound I/O with them, killing them; `BridgeError`,
  raised when a server crashes, hangs or breaks the protocol.

The checked session over these servers is `checked_rl.runtime.sessions.SubprocessSession`.
Nothing here imports PyTorch, so a server starts without it.
"""

from checked_rl.runtime.bridge.processes import BridgeError

__all__ = ["BridgeError"]

"""The bridge's client: `SubprocessSession`, a checked session over Gymnasium servers.

N environments are spread over a `ServerPool` of `python -m checked_rl.runtime.bridge.server`
processes (see `runtime.bridge.processes` for how they are started, timed out and killed).
The servers step and auto-reset; this side turns their replies into tensors and exceptions and
checks every transition against the contract, like every other checked session. The
environments are arbitrary Python objects in other processes, so the session cannot capture
their state: `state_dict` and `load_state_dict` raise `StateNotCapturedError`.
"""

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime.bridge.messages import ReplySchema
from checked_rl.runtime.bridge.processes import (
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_TIMEOUT,
    BridgeError,
    ServerPool,
    ServerProcess,
)
from checked_rl.runtime.bridge.protocol import Message
from checked_rl.runtime.bridge.shared import SharedArrays, layout
from checked_rl.runtime.contract import Contract, ContractViolation
from checked_rl.runtime.envs.base import EnvStep
from checked_rl.runtime.sessions.base import (
    CheckedSession,
    EnvironmentCloseError,
    EnvironmentStepError,
)
from checked_rl.spec.contract import Violation

__all__ = [
    "DEFAULT_TIMEOUT",
    "TRANSPORTS",
    "BridgeError",
    "SubprocessSession",
    "space_from_description",
]

TRANSPORTS = ("auto", "shared-memory", "pipe")
"""The values of `SubprocessSession(transport=...)`."""

FLAGS = ("terminated", "truncated")


class SubprocessSession(CheckedSession):
    """N Gymnasium environments in server processes, behind the checked-session protocol.

    Environments are spread over `num_servers` processes as evenly as possible (the first
    servers take one more); global environment i lives on the server whose range holds it.
    `reset(seed=s)` seeds environment i with `s + i`, so a bridge session yields exactly the
    transitions of the in-process `GymnasiumSession` for the same seeds and actions. The servers
    auto-reset finished environments in the same step and send the true final observation with
    the reset one; the client checks every transition against the contract.

    Args:
        env_id: a Gymnasium id, also `module:Name-vN`.
        num_envs: N, the total number of environments.
        num_servers: processes stepped in parallel.
        make_kwargs: keyword arguments of every `gymnasium.make` call (JSON-serialisable).
        timeout: seconds any request may take before its server counts as hung.
        startup_timeout: seconds the servers may take to start and describe their spaces.
        device: where the returned tensors live.
        reward_dtype: the floating dtype of rewards (float32, as in the in-process session).
        contract: the contract (default: `Contract.from_spaces` of the servers' spaces).
        transport: how a step's actions and results travel: "shared-memory" (a segment per
            server, `runtime.bridge.shared`; the frames carry only commands, errors and the
            hand-over), "pipe" (copies inside the frames), or "auto" (the default): shared
            memory where the spaces have a fixed shape and dtype (a `Box` observation, a `Box`
            or `Discrete` action) and every server could map its segment, else the pipe. The
            attribute `transport` says which one the session uses.

    Raises:
        BridgeError: a server could not start, make its environments, or answer in time.
        ValueError: the spaces are not a `Box` and a `Discrete` starting at 0 or a floating
            `Box`.

    The servers apply the rules of `spec.host_values` as the in-process session does, so a
    value it refuses (a string reward, an array-valued flag, an observation of another shape or
    dtype) is refused here with the same message, and the session stays resettable.
    While stepping, a broken contract raises `ContractViolation` and an exception inside an
    environment (also `SystemExit` or any `BaseException`) raises `EnvironmentStepError` (with
    the server's traceback as its `server_traceback`), both naming the global environment
    index and the step; the servers stay up and `reset` makes the session usable again. A
    server that crashes, hangs or breaks the protocol raises `BridgeError`; every server is
    then killed and the session is done.
    """

    kind = "gymnasium-subprocess"
    takes_gymnasium_ids = True
    uncaptured = "Gymnasium environments (arbitrary Python objects, in server processes)"

    def __init__(
        self,
        env_id: str,
        *,
        num_envs: int = 1,
        num_servers: int = 1,
        make_kwargs: dict[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        device: torch.device | str = "cpu",
        reward_dtype: torch.dtype = torch.float32,
        contract: Contract | None = None,
        transport: str = "auto",
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(
                f"SubprocessSession: transport must be one of {list(TRANSPORTS)}, "
                f"got {transport!r}"
            )
        try:
            make_kwargs_json = json.dumps(make_kwargs or {}, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"SubprocessSession: make_kwargs must be JSON-serialisable, got {make_kwargs!r} "
                f"({error})"
            ) from None
        pool = ServerPool(env_id, num_envs, num_servers, make_kwargs_json, timeout)
        try:
            header, arrays = self._describe(pool, env_id, startup_timeout)
            observation_space = space_from_description(header["observation_space"], arrays)
            bounds = {
                name: arrays[f"action_{name}"]
                for name in ("low", "high")
                if f"action_{name}" in arrays
            }
            action_space = space_from_description(header["action_space"], bounds)
            contract = contract or Contract.from_spaces(observation_space, action_space)
            for server in pool.servers:
                server.schema = ReplySchema(
                    server.num_envs, observation_space.shape, observation_space.dtype
                )
            if transport != "pipe":
                transport = self._share(pool, observation_space, action_space, transport)
        except BaseException:
            pool.kill()
            raise
        super().__init__(contract, num_envs, device)
        self.env_id = env_id
        self.name = header["name"]
        self.reward_dtype = reward_dtype
        self.pool = pool
        self.transport = transport
        self._current: Tensor | None = None

    @property
    def pids(self) -> list[int]:
        """The process ids of the servers."""
        return self.pool.pids

    @staticmethod
    def _describe(pool: ServerPool, env_id: str, timeout: float) -> Message:
        replies = pool.request("describe", timeout=timeout)
        for server, (header, _) in zip(pool.servers, replies, strict=True):
            if not header.get("ok"):
                raise server.failure(
                    f"could not serve {env_id!r}: {header.get('error')}", kill=True
                )
        return replies[0]

    @staticmethod
    def _share(
        pool: ServerPool, observations: gymnasium.Space, actions: gymnasium.Space, wanted: str
    ) -> str:
        """Give every server a shared-memory segment; return the transport this gives.

        "shared-memory" once every server has attached (the segments' names are then removed);
        "pipe" (every segment released) if a segment cannot be made or mapped and `wanted` is
        "auto"; else such a failure is a `BridgeError`."""
        box = None
        if isinstance(actions, gymnasium.spaces.Box):
            box = (actions.shape, actions.dtype)
        observation = (observations.shape, observations.dtype)
        try:
            for server in pool.servers:
                server.shared = SharedArrays.create(*layout(server.num_envs, observation, box))
        except OSError as error:
            if wanted != "auto":
                raise BridgeError(f"bridge: cannot create shared memory: {error}") from error
        else:
            headers = [{"segment": server.shared.name} for server in pool.servers]
            replies = pool.request("attach", headers)
            refusal = next((header for header, _ in replies if not header["ok"]), None)
            if refusal is None:
                for server in pool.servers:
                    server.shared.unlink()
                    server.schema = dataclasses.replace(server.schema, shared=True)
                return "shared-memory"
            if wanted != "auto":
                raise BridgeError(f"bridge: a server could not attach: {refusal['error']}")
        for server in pool.servers:
            if server.shared is not None:
                server.shared.release()
                server.shared = None
        return "pipe"

    def _reset(self, seed: int | None) -> Tensor:
        headers = [
            {"seeds": None if seed is None else [seed + i for i in range(part.start, part.stop)]}
            for part in self.pool.slices
        ]
        replies = self._request("reset", None, headers=headers)
        self._current = self._gather(replies, "observation")
        return self._current

    def _step(self, actions: Tensor, step: int) -> EnvStep:
        host = actions.cpu().numpy()
        if self.transport == "shared-memory":
            return self._shared_step(host, step)
        arrays = [{"actions": host[part]} for part in self.pool.slices]
        replies = self._request("step", step, arrays=arrays)
        self._current = self._gather(replies, "observation")
        return EnvStep(
            next_observation=self._gather(replies, "next_observation"),
            reward=self._gather(replies, "reward").to(self.reward_dtype),
            terminated=self._gather(replies, "terminated"),
            truncated=self._gather(replies, "truncated"),
        )

    def _shared_step(self, host: np.ndarray, step: int) -> EnvStep:
        """`_step` through the servers' segments: actions in, a bare `step` frame each way,
        results copied out."""
        servers = self.pool.servers
        for server, part in zip(servers, self.pool.slices, strict=True):
            np.copyto(server.shared.arrays["actions"], host[part], casting="no")
        self._request("step", step)
        results = {}
        for name in ("next_observation", "observation", "reward", "terminated", "truncated"):
            parts = [server.shared.arrays[name] for server in servers]
            array = parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
            results[name] = torch.from_numpy(array).to(self.device)
        for server in servers:
            flags = (server.shared.arrays[name].view(np.uint8) for name in FLAGS)
            if np.bitwise_or(*flags).max(initial=0) > 1:
                error = server.failure("wrote a flag other than 0 or 1 in its segment", kill=True)
                self.pool.kill()
                raise error
        self._current = results["observation"]
        return EnvStep(
            next_observation=results["next_observation"],
            reward=results["reward"].to(self.reward_dtype),
            terminated=results["terminated"],
            truncated=results["truncated"],
        )

    def _observe(self) -> Tensor:
        assert self._current is not None
        return self._current

    def _close(self) -> None:
        failures = self.pool.close()
        if failures:
            count = sum(failure[2] for failure in failures)
            raise EnvironmentCloseError.of(self.name, *failures[0][:2], count)

    def _request(self, command: str, step: int | None, **parts: Any) -> list[Message]:
        """Send `command` to every server; raise the first error reply as the right exception."""
        replies = self.pool.request(command, **parts)
        for server, (header, _) in zip(self.pool.servers, replies, strict=True):
            if not header.get("ok"):
                raise self._reply_error(server, header, step)
        return replies

    def _reply_error(
        self, server: ServerProcess, header: dict[str, Any], step: int | None
    ) -> Exception:
        """The exception of an error reply: what went wrong, which environment, which step."""
        kind, message = header.get("kind"), header.get("error")
        env = server.first_env + int(header.get("env", 0))
        if kind == "contract":
            record = header["violation"]
            value = record["value"]
            return ContractViolation(
                [
                    Violation(
                        record["kind"],
                        record["field"],
                        env,
                        step if record["at_step"] else None,
                        None,
                        tuple(value) if isinstance(value, list) else value,
                        record["bound"],
                    )
                ]
            )
        if kind == "environment":
            at = "" if step is None else f" at step {step}"
            error = EnvironmentStepError(
                f"{self.name} environment {env} raised in {header.get('call')}{at} "
                f"(bridge {server.name}): {message}"
            )
            error.server_traceback = header.get("traceback", "")
            return error
        self.pool.kill()
        return BridgeError(f"bridge: {server.name} refused the request: {message}")

    def _gather(self, replies: Sequence[Message], name: str) -> Tensor:
        """One reply array from every server, concatenated into a tensor on `device`."""
        parts = [arrays[name] for _, arrays in replies]
        array = parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
        return torch.from_numpy(array).to(self.device)


def space_from_description(
    description: dict[str, Any], arrays: dict[str, np.ndarray]
) -> gymnasium.Space:
    """Rebuild a `Box` or `Discrete` space from its `describe` record; refuse anything else.

    A `Box` action space's bounds travel as the arrays `action_low` and `action_high`."""
    kind = description.get("type")
    if kind == "Box":
        return gymnasium.spaces.Box(
            arrays["low"],
            arrays["high"],
            tuple(description["shape"]),
            np.dtype(description["dtype"]),
        )
    if kind == "Discrete":
        return gymnasium.spaces.Discrete(description["n"], start=description["start"])
    raise ValueError(
        f"bridge: expected Box observation and Box or Discrete action spaces, got a {kind} "
        f"space ({description})"
    )

"""The bridge's server: K Gymnasium environments behind a framed pipe.

    python -m checked_rl.runtime.bridge.server --env-id CartPole-v1 --num-envs 4 --make-kwargs '{}'

The server reads requests from its standard input and writes replies to its standard output,
in the frames of `runtime.bridge.protocol`. Simulators print: an environment that writes to
file descriptor 1 (Python `print`, or C code calling `printf`) must not corrupt the channel. So
the first thing the server does is to keep private duplicates of descriptors 0 and 1 for the
protocol and point descriptor 1 at standard error and descriptor 0 at `/dev/null`; whatever an
environment prints ends up in the server's stderr, which the client keeps the tail of for error
messages. (Dedicated pipes passed with `pass_fds` would work too; duplicating keeps the command
line usable by hand and needs no platform-specific descriptor passing.)

The server steps its environments one after the other and resets, in the same step, those that
finish (`terminated or truncated`), sending both the true final observation and the reset one.
It waits for the next request without a deadline (an idle client is legitimate; the client
side times out every request it makes). It exits with code 0 after `close` or when its standard
input reaches end of file (the client died), and with code 3 after a frame it cannot parse,
having replied with the reason, since the stream cannot be resynchronised after that. An
exception inside an environment becomes an error reply naming the environment and the exception;
the server keeps serving, and the client decides what the session may do next.
"""

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, BinaryIO

import gymnasium as gym
import numpy as np

from checked_rl.runtime.bridge.protocol import (
    COMMANDS,
    PREFIX,
    ProtocolError,
    decode_body,
    decode_prefix,
    encode_frame,
)

__all__ = ["GymServer", "describe_space", "main"]

EXIT_CLOSED = 0
"""Exit code after `close` or at the end of the input."""

EXIT_MAKE_FAILED = 1
"""Exit code after `close` when the environments could not be made."""

EXIT_BAD_FRAME = 3
"""Exit code after a frame that could not be parsed (the reason was sent as a reply)."""


def describe_space(space: gym.Space) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A JSON record of `space` and the arrays it needs (a `Box`'s bounds), for `describe`."""
    record: dict[str, Any] = {"type": type(space).__name__}
    arrays: dict[str, np.ndarray] = {}
    if isinstance(space, gym.spaces.Box):
        record.update(shape=list(space.shape), dtype=np.dtype(space.dtype).str)
        arrays = {"low": np.asarray(space.low), "high": np.asarray(space.high)}
    elif isinstance(space, gym.spaces.Discrete):
        record.update(n=int(space.n), start=int(space.start))
    return record, arrays


class GymServer:
    """K environments made from one id; each method serves one request.

    Args:
        env_id: a Gymnasium id, also `module:Name-vN`.
        num_envs: K, the number of environments this server hosts.
        make_kwargs: keyword arguments for every `gymnasium.make` call.
    """

    def __init__(self, env_id: str, num_envs: int, make_kwargs: dict[str, Any]) -> None:
        self.env_id = env_id
        self.envs = [gym.make(env_id, **make_kwargs) for _ in range(num_envs)]

    def handle(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
        """Serve one decoded request; return the reply frame (an error reply if it fails)."""
        command = header.get("cmd")
        try:
            if command == "describe":
                return self.describe()
            if command == "reset":
                return self.reset(header.get("seeds"))
            if command == "step":
                return self.step(arrays.get("actions"))
            if command == "close":
                return encode_frame({"ok": True})
            raise ProtocolError(f"unknown command {command!r}; expected one of {list(COMMANDS)}")
        except ProtocolError as error:
            return error_reply(str(error), "protocol")
        except EnvironmentFailure as failure:
            return error_reply(str(failure), failure.kind, **failure.fields)
        except Exception as error:
            print(traceback.format_exc(), file=sys.stderr, end="")
            return error_reply(f"server failed on {command!r}: {error!r}", "internal")

    def describe(self) -> bytes:
        """Reply with K and both spaces."""
        observation, observation_arrays = describe_space(self.envs[0].observation_space)
        action, _ = describe_space(self.envs[0].action_space)
        spec = self.envs[0].spec
        header = {
            "ok": True,
            "name": spec.id if spec is not None else type(self.envs[0].unwrapped).__name__,
            "num_envs": len(self.envs),
            "observation_space": observation,
            "action_space": action,
        }
        return encode_frame(header, observation_arrays)

    def reset(self, seeds: object) -> bytes:
        """Reset every environment, environment i with `seeds[i]` when seeds are given."""
        if seeds is None:
            seeds = [None] * len(self.envs)
        if not (
            isinstance(seeds, list)
            and len(seeds) == len(self.envs)
            and all(s is None or (isinstance(s, int) and not isinstance(s, bool)) for s in seeds)
        ):
            raise ProtocolError(
                f"reset: expected 'seeds' to be null or a list of {len(self.envs)} integers, "
                f"got {seeds!r}"
            )
        observations = []
        for index, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            try:
                observation, _ = env.reset(seed=seed)
            except Exception as error:
                raise environment_failure(index, "reset", error) from error
            observations.append(observation)
        return encode_frame({"ok": True}, {"observation": self._stack("observation", observations)})

    def step(self, actions: np.ndarray | None) -> bytes:
        """Step every environment; reset in the same step those that finish."""
        actions = self._check_actions(actions)
        final, rewards, terminated, truncated, current = [], [], [], [], []
        for index, (env, action) in enumerate(zip(self.envs, actions.tolist(), strict=True)):
            try:
                observation, reward, term, trunc, _ = env.step(action)
            except Exception as error:
                raise environment_failure(index, f"step (action {action})", error) from error
            final.append(observation)
            rewards.append(float(reward))
            terminated.append(bool(term))
            truncated.append(bool(trunc))
            if term or trunc:
                try:
                    observation, _ = env.reset()
                except Exception as error:
                    raise environment_failure(index, "auto-reset", error) from error
            current.append(observation)
        arrays = {
            "next_observation": self._stack("next_observation", final),
            "reward": np.asarray(rewards, dtype=np.float64),
            "terminated": np.asarray(terminated, dtype=bool),
            "truncated": np.asarray(truncated, dtype=bool),
            "observation": self._stack("observation", current),
        }
        return encode_frame({"ok": True}, arrays)

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()

    def _check_actions(self, actions: np.ndarray | None) -> np.ndarray:
        if actions is None:
            raise ProtocolError("step: expected an array 'actions', got none")
        if actions.shape != (len(self.envs),) or actions.dtype.kind not in "iu":
            raise ProtocolError(
                f"step: expected 'actions' of shape ({len(self.envs)},) and an integer dtype, "
                f"got shape {actions.shape} and dtype {actions.dtype}"
            )
        space = self.envs[0].action_space
        if isinstance(space, gym.spaces.Discrete):
            outside = np.flatnonzero((actions < space.start) | (actions >= space.start + space.n))
            if outside.size:
                index = int(outside[0])
                raise ProtocolError(
                    f"step: actions[{index}] = {int(actions[index])} is outside {space}"
                )
        return actions

    def _stack(self, field: str, observations: Sequence[Any]) -> np.ndarray:
        """Stack observations `[K, *S]` of the observation space's shape and dtype.

        When the stack is not of the space's shape and dtype, the first observation at fault
        raises `EnvironmentFailure` naming it, as the in-process session's check does.
        """
        space = self.envs[0].observation_space
        try:
            stacked = np.stack(observations)
        except ValueError:
            stacked = None
        if stacked is not None and (stacked.shape[1:], stacked.dtype) == (space.shape, space.dtype):
            return stacked
        for index, observation in enumerate(observations):
            array = np.asarray(observation)
            for kind, value, expected in (
                ("shape", array.shape, space.shape),
                ("dtype", array.dtype, space.dtype),
            ):
                if value != expected:
                    raise EnvironmentFailure(
                        f"{field} has {kind} {value}, expected {expected}",
                        "contract",
                        env=index,
                        field=field,
                        violation=kind,
                        value=list(value) if kind == "shape" else str(value),
                    )
        raise AssertionError(f"{field}: observations of the space's shape failed to stack")


class EnvironmentFailure(Exception):
    """A failure of one environment, carried to the client as an error reply.

    Args:
        message: what happened, without saying which environment (the client knows its index).
        kind: "environment" (it raised) or "contract" (an observation of the wrong shape or
            dtype, which cannot be stacked or sent as the space says).
        env: the environment's index on this server.
        fields: more header fields for the reply.
    """

    def __init__(
        self, message: str, kind: str, *, env: int, traceback: str = "", **fields: Any
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.fields = {"env": env, "traceback": traceback, **fields}


def environment_failure(index: int, what: str, error: Exception) -> EnvironmentFailure:
    """The failure of environment `index` that raised `error` in `what`, with its traceback."""
    trace = "".join(traceback.format_exception(error))
    print(trace, file=sys.stderr, end="")
    return EnvironmentFailure(
        f"{type(error).__name__}: {error}", "environment", env=index, call=what, traceback=trace
    )


def error_reply(message: str, kind: str, **fields: Any) -> bytes:
    """The frame of a failed request: `{"ok": false, "error", "kind", ...fields}`."""
    return encode_frame({"ok": False, "error": message, "kind": kind, **fields})


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


def serve(
    server: GymServer | None, make_error: str, channel_in: BinaryIO, channel_out: BinaryIO
) -> int:
    """Answer requests until `close`, end of input or a broken frame; return the exit code."""
    while True:
        try:
            prefix = read_exact(channel_in, PREFIX.size)
            if prefix is None:
                return EXIT_CLOSED
            body = read_exact(channel_in, decode_prefix(prefix))
            if body is None:
                raise ProtocolError("bad frame: stream ended after the prefix")
            header, arrays = decode_body(prefix, body)
        except ProtocolError as error:
            print(f"checked_rl.runtime.bridge.server: {error}", file=sys.stderr)
            channel_out.write(error_reply(str(error), "protocol"))
            return EXIT_BAD_FRAME
        if server is None:
            channel_out.write(error_reply(make_error, "make"))
            if header.get("cmd") == "close":
                return EXIT_MAKE_FAILED
            continue
        channel_out.write(server.handle(header, arrays))
        if header.get("cmd") == "close":
            server.close()
            return EXIT_CLOSED


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, make the environments and serve; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m checked_rl.runtime.bridge.server")
    parser.add_argument("--env-id", required=True, help="Gymnasium id, also module:Name-vN")
    parser.add_argument("--num-envs", type=int, default=1, help="environments on this server")
    parser.add_argument("--make-kwargs", default="{}", help="JSON object of gymnasium.make kwargs")
    args = parser.parse_args(argv)
    channel_in, channel_out = claim_channel()
    server, make_error = None, ""
    try:
        make_kwargs = json.loads(args.make_kwargs)
        if not isinstance(make_kwargs, dict):
            raise ValueError(f"--make-kwargs must be a JSON object, got {args.make_kwargs!r}")
        server = GymServer(args.env_id, args.num_envs, make_kwargs)
    except Exception as error:
        make_error = f"could not make {args.env_id!r}: {type(error).__name__}: {error}"
        print(f"checked_rl.runtime.bridge.server: {make_error}", file=sys.stderr)
    try:
        return serve(server, make_error, channel_in, channel_out)
    except (BrokenPipeError, KeyboardInterrupt):
        return EXIT_CLOSED


if __name__ == "__main__":
    sys.exit(main())

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
side times out every request it makes). Every request is checked against its schema
(`runtime.bridge.messages`) before use; one that breaks it gets an error reply and the server
keeps serving. It exits with code 0 after `close`; when its standard input reaches end of file
or its parent dies (the client is gone), it ends its process group, environments' children
included (`runtime.bridge.lifeline`); it exits with code 3 after a frame it cannot parse,
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

from checked_rl.runtime.bridge.channel import claim_channel, read_exact
from checked_rl.runtime.bridge.failures import EnvironmentFailure, call_env, obeyed
from checked_rl.runtime.bridge.lifeline import end_group, watch_client
from checked_rl.runtime.bridge.messages import check_request, clip_text
from checked_rl.runtime.bridge.protocol import (
    BARE_REQUESTS,
    OK_FRAME,
    PREFIX,
    ProtocolError,
    decode_body,
    decode_prefix,
    encode_frame,
)
from checked_rl.runtime.bridge.shared import SharedArrays, layout
from checked_rl.spec import host_values

__all__ = ["GymServer", "describe_space", "main"]

EXIT_CLOSED = 0
"""Exit code after `close` or at the end of the input."""

EXIT_MAKE_FAILED = 1
"""Exit code after `close` when the environments could not be made."""

BARE_STEP = BARE_REQUESTS["step"][PREFIX.size :]
"""The body of a `step` request without arrays (the client's with a shared segment)."""

EXIT_BAD_FRAME = 3
"""Exit code after a frame that could not be parsed (the reason was sent as a reply)."""


def describe_space(space: gym.Space) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A JSON record of `space` and the arrays it needs (a `Box`'s bounds), for `describe`."""
    record: dict[str, Any] = {"type": type(space).__name__}
    arrays: dict[str, np.ndarray] = {}
    if isinstance(space, gym.spaces.Box):
        wire = np.dtype(space.dtype).newbyteorder("<").str
        record.update(shape=list(space.shape), dtype=wire)
        arrays = {"low": np.asarray(space.low), "high": np.asarray(space.high)}
    elif isinstance(space, gym.spaces.Discrete):
        record.update(n=int(space.n), start=int(space.start))
    return record, arrays


class GymServer:
    """K environments made from one id; each method serves one request.

    Whatever an environment hands over passes the rules of `spec.host_values`, as in the
    in-process session, in the same order (per environment: the step's result, its reward, its
    flags, the auto-reset; then the successors' and the current observations' structure), so
    that the client raises the same violation. Whatever an environment raises, `SystemExit`
    and other `BaseException`s included, becomes an error reply.

    Args:
        env_id: a Gymnasium id, also `module:Name-vN`.
        num_envs: K, the number of environments this server hosts.
        make_kwargs: keyword arguments for every `gymnasium.make` call.
    """

    def __init__(self, env_id: str, num_envs: int, make_kwargs: dict[str, Any]) -> None:
        self.env_id = env_id
        self.envs = [gym.make(env_id, **make_kwargs) for _ in range(num_envs)]
        self.closed = False
        actions = self.envs[0].action_space
        self.action_box = None
        if isinstance(actions, gym.spaces.Box):
            self.action_box = (tuple(actions.shape), np.dtype(actions.dtype))
        space = self.envs[0].observation_space
        self.observation_shape = tuple(getattr(space, "shape", None) or ())
        self.observation_dtype = np.dtype(getattr(space, "dtype", None) or np.float32)
        self.shared: SharedArrays | None = None

    def handle(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
        """Serve one decoded request; return the reply frame (an error reply if it fails)."""
        command = header.get("cmd")
        try:
            command, argument = check_request(
                header, arrays, len(self.envs), self.action_box, self.shared is not None
            )
            if command == "describe":
                return self.describe()
            if command == "attach":
                return self.attach(argument)
            if command == "reset":
                return self.reset(argument)
            if command == "step":
                return self.step(argument)
            self.closed = True
            return self.close()
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
        action, action_arrays = describe_space(self.envs[0].action_space)
        arrays = {f"action_{name}": bound for name, bound in action_arrays.items()}
        spec = self.envs[0].spec
        header = {
            "ok": True,
            "name": clip_text(spec.id if spec else type(self.envs[0].unwrapped).__name__),
            "num_envs": len(self.envs),
            "observation_space": observation,
            "action_space": action,
        }
        return encode_frame(header, observation_arrays | arrays)

    def attach(self, name: str) -> bytes:
        """Map the client's shared-memory segment `name`; later steps without arrays use it."""
        if self.shared is not None:
            return error_reply("attach: a segment is attached already", "protocol")
        observation = (self.observation_shape, self.observation_dtype)
        try:
            self.shared = SharedArrays.attach(
                name, *layout(len(self.envs), observation, self.action_box)
            )
        except (OSError, ValueError) as error:
            return error_reply(f"attach: cannot map segment {name!r}: {error}", "internal")
        return OK_FRAME

    def reset(self, seeds: list[int | None] | None) -> bytes:
        """Reset every environment, environment i with `seeds[i]` when seeds are given."""
        seeds = seeds or [None] * len(self.envs)
        observations = []
        for index, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            result = call_env(index, "reset", lambda e=env, s=seed: e.reset(seed=s))
            checked = host_values.result_value(result, "reset", env=index, step=None)
            observations.append(obeyed(checked)[0])
        return encode_frame({"ok": True}, {"observation": self._stack("observation", observations)})

    def step(self, actions: np.ndarray | None) -> bytes:
        """Step every environment; reset in the same step those that finish.

        `actions` None: they are in the shared segment, and so go the results."""
        shared = None if actions is not None else self.shared.arrays
        if shared is not None:
            actions = shared["actions"].copy()
        self._check_actions(actions)
        final, rewards, terminated, truncated, current = [], [], [], [], []
        rows = actions.tolist() if self.action_box is None else [row.copy() for row in actions]
        for index, (env, action) in enumerate(zip(self.envs, rows, strict=True)):
            result = call_env(index, "step", lambda e=env, a=action: e.step(a), action)
            if (  # the usual result, which the rules below leave as it is (but a float reward)
                type(result) is tuple
                and len(result) == 5
                and isinstance(result[1], float | np.floating)
                and type(result[2]) is bool
                and type(result[3]) is bool
            ):
                observation, reward, term, trunc, _ = result
                final.append(observation)
                rewards.append(float(reward))
                terminated.append(term)
                truncated.append(trunc)
            else:
                at = {"env": index, "step": 0}
                observation, reward, term, trunc, _ = obeyed(
                    host_values.result_value(result, "step", **at)
                )
                final.append(observation)
                rewards.append(obeyed(host_values.reward_value(reward, **at)))
                terminated.append(obeyed(host_values.flag_value(term, "terminated", **at)))
                truncated.append(obeyed(host_values.flag_value(trunc, "truncated", **at)))
            if terminated[-1] or truncated[-1]:
                result = call_env(index, "auto-reset", lambda e=env: e.reset())
                observation = obeyed(
                    host_values.result_value(result, "reset", env=index, step=None)
                )[0]
            current.append(observation)
        arrays = {
            "next_observation": self._stack("next_observation", final, step=0),
            "reward": np.asarray(rewards, dtype=np.float64),
            "terminated": np.asarray(terminated, dtype=bool),
            "truncated": np.asarray(truncated, dtype=bool),
            "observation": self._stack("observation", current),
        }
        if shared is None:
            return encode_frame({"ok": True}, arrays)
        for name, array in arrays.items():
            shared[name][...] = array
        return OK_FRAME

    def close(self) -> bytes:
        """Close every environment; reply with the first whose `close()` raised, if any."""
        failures = []
        for index, env in enumerate(self.envs):
            try:
                env.close()
            except BaseException as error:
                print("".join(traceback.format_exception(error)), file=sys.stderr, end="")
                failures.append((index, f"{type(error).__name__}: {error}"))
        if not failures:
            return encode_frame({"ok": True})
        index, what = failures[0]
        return error_reply(what, "close", env=index, failures=len(failures))

    def _check_actions(self, actions: np.ndarray) -> None:
        space = self.envs[0].action_space
        if isinstance(space, gym.spaces.Discrete):
            if space.start <= actions.min(initial=space.start) and actions.max(
                initial=space.start
            ) < (space.start + space.n):
                return
            outside = np.flatnonzero((actions < space.start) | (actions >= space.start + space.n))
            if outside.size:
                index = int(outside[0])
                raise ProtocolError(
                    f"step: actions[{index}] = {int(actions[index])} is outside {space}"
                )
        elif isinstance(space, gym.spaces.Box):
            # The client sends actions clipped into the box: anything else is not its message.
            low, high = (bound.astype(actions.dtype) for bound in (space.low, space.high))
            with np.errstate(invalid="ignore"):
                inside = (low <= actions) & (actions <= high)
            outside = np.flatnonzero(~inside.reshape(len(actions), -1).all(axis=1))
            if outside.size:
                index = int(outside[0])
                raise ProtocolError(
                    f"step: actions[{index}] = {actions[index].tolist()} is not a finite "
                    f"action inside {space}"
                )

    def _stack(
        self, field: str, observations: Sequence[Any], step: int | None = None
    ) -> np.ndarray:
        """Stack observations `[K, *S]` of the observation space's shape and dtype, or raise
        the contract failure of the first at fault (`spec.host_values.observation_value`)."""
        shape, dtype = self.observation_shape, self.observation_dtype
        if all(
            type(each) is np.ndarray and each.shape == shape and each.dtype == dtype
            for each in observations
        ):  # what the rule leaves as it is (an equal dtype is in native byte order)
            return np.stack(observations)
        arrays = [
            obeyed(
                host_values.observation_value(
                    observation,
                    self.observation_shape,
                    self.observation_dtype,
                    field=field,
                    env=index,
                    step=step,
                )
            )
            for index, observation in enumerate(observations)
        ]
        return np.stack(arrays)


def error_reply(message: str, kind: str, **fields: Any) -> bytes:
    """The frame of a failed request: `{"ok": false, "error", "kind", ...fields}`."""
    return encode_frame({"ok": False, "error": clip_text(message), "kind": kind, **fields})


def serve(
    server: GymServer | None, make_error: str, channel_in: BinaryIO, channel_out: BinaryIO
) -> int:
    """Answer requests until `close`, end of input or a broken frame; return the exit code.

    A frame whose framing breaks (prefix, lengths, truncation) ends the server, since the
    stream cannot be resynchronised; a whole frame whose header or arrays are malformed gets an
    error reply and the server goes on with the next one.
    """
    while True:
        try:
            prefix = read_exact(channel_in, PREFIX.size)
            if prefix is None:
                if os.getpgrp() == os.getpid():
                    end_group()
                return EXIT_CLOSED
            body = read_exact(channel_in, decode_prefix(prefix))
            if body is None:
                raise ProtocolError("bad frame: stream ended after the prefix")
        except ProtocolError as error:
            print(f"checked_rl.runtime.bridge.server: {error}", file=sys.stderr)
            channel_out.write(error_reply(str(error), "protocol"))
            return EXIT_BAD_FRAME
        try:
            bare = body == BARE_STEP
            header, arrays = ({"cmd": "step"}, {}) if bare else decode_body(prefix, body)
        except ProtocolError as error:
            channel_out.write(error_reply(str(error), "protocol"))
            continue
        if server is None:
            channel_out.write(error_reply(make_error, "make"))
            if header == {"cmd": "close"}:
                return EXIT_MAKE_FAILED
            continue
        channel_out.write(server.handle(header, arrays))
        if server.closed:
            return EXIT_CLOSED


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, make the environments and serve; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m checked_rl.runtime.bridge.server")
    parser.add_argument("--env-id", required=True, help="Gymnasium id, also module:Name-vN")
    parser.add_argument("--num-envs", type=int, default=1, help="environments on this server")
    parser.add_argument("--make-kwargs", default="{}", help="JSON object of gymnasium.make kwargs")
    args = parser.parse_args(argv)
    channel_in, channel_out = claim_channel()
    watch_client()
    server, make_error = None, ""
    try:
        make_kwargs = json.loads(args.make_kwargs)
        if not isinstance(make_kwargs, dict):
            raise ValueError(f"--make-kwargs must be a JSON object, got {args.make_kwargs!r}")
        server = GymServer(args.env_id, args.num_envs, make_kwargs)
    except BaseException as error:
        make_error = f"could not make {args.env_id!r}: {type(error).__name__}: {error}"
        print(f"checked_rl.runtime.bridge.server: {make_error}", file=sys.stderr)
    try:
        return serve(server, make_error, channel_in, channel_out)
    except (BrokenPipeError, KeyboardInterrupt):
        return EXIT_CLOSED


if __name__ == "__main__":
    sys.exit(main())

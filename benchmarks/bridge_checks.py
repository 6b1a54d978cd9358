"""What the trust boundary's own checks cost: bridge message schemas, and the detailed report.

1. Message schemas (`runtime.bridge.messages`): the checks of one `step` (the request on the
   server, the reply on the client) against the peer, one bridge step of `NUM_ENVS` CartPoles
   on one server over the pipe transport (`SubprocessSession.step_checked`, which includes
   those checks; the shared-memory transport sends no arrays in its frames). With
   `--jsonschema`, also the same reply header checked by the `jsonschema` library
   (Draft 2020-12, validator built once), when it is installed.
2. The detailed report of a rejected batch: one NaN in a `REPORT_ENTRIES`-entry observation,
   by the reference `spec.contract.violations` (a Python loop over every entry) against
   `runtime.contract.report.violations` (array masks).

Times are the best of `ROUNDS` rounds; the load average is printed beside them, since the
numbers are noisy on a shared machine. Run: `python benchmarks/bridge_checks.py [--jsonschema]`.
"""

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from checked_rl.runtime.bridge.messages import ReplySchema, check_reply, check_request
from checked_rl.runtime.bridge.protocol import PREFIX, decode_body, encode_frame
from checked_rl.runtime.contract import report
from checked_rl.runtime.sessions import make_session
from checked_rl.spec import contract as spec_contract

NUM_ENVS = 4
ROUNDS = 5
CHECKS_PER_ROUND = 20_000
STEPS_PER_ROUND = 500
REPORT_ENTRIES = 1_000_000


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    """The best time of one call of `run`, over `ROUNDS` rounds of `repeats` calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def step_messages() -> tuple[tuple, tuple]:
    """A decoded `step` request and reply of `NUM_ENVS` CartPoles."""
    observations = np.zeros((NUM_ENVS, 4), np.float32)
    reply = encode_frame(
        {"ok": True},
        {
            "next_observation": observations,
            "reward": np.ones(NUM_ENVS),
            "terminated": np.zeros(NUM_ENVS, bool),
            "truncated": np.zeros(NUM_ENVS, bool),
            "observation": observations,
        },
    )
    request = encode_frame({"cmd": "step"}, {"actions": np.zeros(NUM_ENVS, np.int64)})
    return tuple(decode_body(f[: PREFIX.size], f[PREFIX.size :]) for f in (request, reply))


def jsonschema_check() -> Callable[[], None] | None:
    """The reply header's check by `jsonschema`, or None when it is not installed."""
    try:
        import jsonschema
    except ImportError:
        return None
    record = {
        "type": "object",
        "required": ["name", "dtype", "shape"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "dtype": {"enum": ["<f4", "<f8", "|b1"]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        },
    }
    schema = {
        "type": "object",
        "required": ["ok", "arrays"],
        "additionalProperties": False,
        "properties": {"ok": {"const": True}, "arrays": {"type": "array", "items": record}},
    }
    validator = jsonschema.Draft202012Validator(schema)
    observations = {"dtype": "<f4", "shape": [NUM_ENVS, 4]}
    header = {
        "ok": True,
        "arrays": [
            {"name": "next_observation", **observations},
            {"name": "reward", "dtype": "<f8", "shape": [NUM_ENVS]},
            {"name": "terminated", "dtype": "|b1", "shape": [NUM_ENVS]},
            {"name": "truncated", "dtype": "|b1", "shape": [NUM_ENVS]},
            {"name": "observation", **observations},
        ],
    }
    return lambda: validator.validate(header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsonschema", action="store_true", help="also time jsonschema")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    (request, arrays), (reply, reply_arrays) = step_messages()
    schema = ReplySchema(NUM_ENVS, (4,), np.dtype(np.float32))

    def checks() -> None:
        check_request(request, arrays, NUM_ENVS)
        check_reply("step", reply, reply_arrays, schema)

    check = best_seconds(checks, CHECKS_PER_ROUND)
    session = make_session(
        "gymnasium-subprocess", "CartPole-v1", num_envs=NUM_ENVS, seed=0, transport="pipe"
    )
    actions = torch.zeros(NUM_ENVS, dtype=torch.int64)
    step = best_seconds(lambda: session.step_checked(actions), STEPS_PER_ROUND)
    session.close()
    print(f"schema checks of one step (request + reply): {check * 1e6:.1f} us")
    print(f"one bridge step of {NUM_ENVS} CartPoles (peer): {step * 1e6:.1f} us")
    print(f"share of the step: {check / step:.1%}")
    if args.jsonschema:
        validate = jsonschema_check()
        if validate is None:
            print("jsonschema: not installed (pip install jsonschema)")
        else:
            library = best_seconds(validate, CHECKS_PER_ROUND // 10)
            print(
                f"jsonschema, the reply header alone: {library * 1e6:.1f} us "
                f"({library / check:.1f}x the schema checks of a whole step)"
            )
    contract = spec_contract.Contract((REPORT_ENTRIES,), n_actions=2)
    successor = np.zeros((1, REPORT_ENTRIES), np.float32)
    successor[0, REPORT_ENTRIES // 2] = np.nan
    batch = spec_contract.Transition(
        np.zeros((1, REPORT_ENTRIES), np.float32),
        np.zeros(1, np.int64),
        np.ones(1),
        successor,
        np.zeros(1, bool),
        np.zeros(1, bool),
    )
    start = time.perf_counter()
    expected = spec_contract.violations(contract, batch, step=0)
    reference = time.perf_counter() - start
    fast = best_seconds(lambda: report.violations(contract, batch, step=0), 1)
    assert [str(v) for v in report.violations(contract, batch, step=0)] == [
        str(v) for v in expected
    ]
    print(
        f"report of one NaN in {REPORT_ENTRIES} entries: reference {reference:.2f} s, "
        f"vectorised {fast * 1e3:.1f} ms ({reference / fast:.0f}x)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

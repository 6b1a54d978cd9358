"""Session speed on CartPole-v1: environment steps per second of every session kind.

The peer is plain Gymnasium: a Python loop over `gymnasium.make("CartPole-v1")` environments
that resets each one when it finishes, and Gymnasium's own `SyncVectorEnv`, both at
`GYM_ENVS` environments. Against them:

- the spec session (NumPy reference) at `GYM_ENVS` environments;
- the torch session at `TORCH_ENVS` environments, with its contract check and without it
  (`step_checked` with the check made a no-op), and the check alone on a fixed transition; its
  CartPole has the default settings (a compiled step at this size, compiled before timing),
  and the script says which path the CPU check takes (the compiled screen or NumPy);
- the in-process Gymnasium session at `GYM_ENVS` environments;
- the bridge (`gymnasium-subprocess`) with 1, 2 and 4 servers sharing `GYM_ENVS` environments,
  with its default transport (shared memory), and with 1 server over the pipe; for each, the
  share of a core the client process uses while it steps (it waits for its servers blocked in
  the kernel, never spinning, so the servers get the cores).

Every measurement steps with uniformly random actions for at least `SECONDS` seconds after
`WARMUP` steps, in `ROUNDS` interleaved rounds, and reports the best rate in environment steps
(batched steps times environments) per second.
Targets: the check costs at most 10% of a checked torch step at `TORCH_ENVS`; the bridge with
1 server reaches 0.8 of the in-process Gymnasium session, and 2 servers at least 1 server.
Torch keeps its own thread settings, as a user gets them (`--threads` changes them); `--load`
runs everything with one busy process per core. Run:
`python benchmarks/sessions.py [--load] [--device cuda] [--seconds 2] [--threads T]`.
"""

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import gymnasium
import numpy as np
import torch
from conditions import add_load_option, condition, load_line

from checked_rl.runtime.contract import check_transition, screen
from checked_rl.runtime.sessions import CheckedSession, make_session
from checked_rl.runtime.sessions import base as sessions_base

ENV_ID = "CartPole-v1"
GYM_ENVS = 16
"""Environments of the spec, Gymnasium and bridge measurements."""

TORCH_ENVS = 16384
"""Environments of the torch session measurements."""

SECONDS = 2.0
"""Minimum timed duration of each measurement."""

WARMUP = 20
"""Untimed steps before each measurement."""

SERVERS = (1, 2, 4)
"""Bridge server counts measured."""

ROUNDS = 3
"""Measurement rounds, interleaved; the best rate of each counts (the machine may be shared)."""

def steps_per_second(step: Callable[[], object], num_envs: int, seconds: float) -> float:
    """Environment steps per second of `step` (one batched step of `num_envs` environments)."""
    for _ in range(WARMUP):
        step()
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step()
        calls += 10
    return calls * num_envs / elapsed


def client_cpu_share(step: Callable[[], object], seconds: float) -> float:
    """The share of one core this process uses while calling `step` for `seconds` (a bridge
    client that waits for its servers without spinning stays well below 1)."""
    for _ in range(WARMUP):
        step()
    cpu, start = time.process_time(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
    return (time.process_time() - cpu) / (time.perf_counter() - start)


def session_stepper(session: CheckedSession, seed: int = 0) -> Callable[[], object]:
    """One `step_checked` with random actions per call."""
    generator = torch.Generator(device=session.device).manual_seed(seed)
    shape = (session.num_envs,)

    def step() -> object:
        actions = torch.randint(2, shape, generator=generator, device=session.device)
        return session.step_checked(actions)

    return step


@contextlib.contextmanager
def contract_check_disabled() -> Iterator[None]:
    """Sessions step without their contract check: `check_transition` becomes a no-op.

    For this comparison only: everything else `step_checked` does (shape checks of the
    arguments, the `Transition` record, the step count, the auto-reset bookkeeping) still runs.
    """
    original = sessions_base.check_transition
    sessions_base.check_transition = lambda *args, **kwargs: None
    try:
        yield
    finally:
        sessions_base.check_transition = original


def check_only(session: CheckedSession) -> Callable[[], object]:
    """The contract check of one fixed, valid transition of `session`."""
    transition = session_stepper(session)()
    return lambda: check_transition(session.contract, transition, step=0)


def gymnasium_loop(num_envs: int, seed: int = 0) -> Callable[[], object]:
    """Plain Gymnasium: step a list of environments, reset those that finish."""
    envs = [gymnasium.make(ENV_ID) for _ in range(num_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    rng = np.random.default_rng(seed)

    def step() -> object:
        for env, action in zip(envs, rng.integers(0, 2, num_envs).tolist(), strict=True):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    return step


def sync_vector_env(num_envs: int, seed: int = 0) -> Callable[[], object]:
    """Gymnasium's `SyncVectorEnv` (next-step auto-reset)."""
    vector = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(ENV_ID)] * num_envs)
    vector.reset(seed=seed)
    rng = np.random.default_rng(seed)
    return lambda: vector.step(rng.integers(0, 2, num_envs))


def measurements_of(
    stack: contextlib.ExitStack, device: str
) -> dict[str, tuple[Callable[[], object], int]]:
    """Every measurement: its name, one batched step, and its number of environments.

    Sessions are opened on `stack`, so they stay open across rounds and close at the end.
    """

    def opened(kind: str, num_envs: int, **options: object) -> CheckedSession:
        return stack.enter_context(make_session(kind, ENV_ID, num_envs=num_envs, seed=0, **options))

    measurements = {
        "gymnasium loop": (gymnasium_loop(GYM_ENVS), GYM_ENVS),
        "SyncVectorEnv": (sync_vector_env(GYM_ENVS), GYM_ENVS),
        "spec session": (session_stepper(opened("spec", GYM_ENVS)), GYM_ENVS),
        "gymnasium session": (session_stepper(opened("gymnasium", GYM_ENVS)), GYM_ENVS),
    }
    for servers in SERVERS:
        session = opened("gymnasium-subprocess", GYM_ENVS, num_servers=servers)
        measurements[f"bridge, {servers} server(s)"] = (session_stepper(session), GYM_ENVS)
    # The default transport is shared memory; the pipe (copies in the frames) for comparison.
    session = opened("gymnasium-subprocess", GYM_ENVS, num_servers=1, transport="pipe")
    measurements["bridge, 1 server, pipe"] = (session_stepper(session), GYM_ENVS)
    session = opened("torch", TORCH_ENVS, device=device)
    synchronize = torch.cuda.synchronize if session.device.type == "cuda" else (lambda: None)
    checked = session_stepper(session)

    def unchecked() -> None:
        with contract_check_disabled():
            checked()
        synchronize()

    check = check_only(session)
    measurements["torch session, checked"] = (lambda: (checked(), synchronize()), TORCH_ENVS)
    measurements["torch session, unchecked"] = (unchecked, TORCH_ENVS)
    measurements["contract check alone"] = (lambda: (check(), synchronize()), TORCH_ENVS)
    return measurements


def main() -> None:
    """Measure every session kind and print steps/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="device of the torch session")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="seconds per measurement")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's own)"
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds; the best counts")
    add_load_option(parser)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with condition(args.load) as setting, contextlib.ExitStack() as stack:
        measurements = measurements_of(stack, args.device)
        results = {name: 0.0 for name in measurements}
        for _ in range(args.rounds):
            for name, (step, envs) in measurements.items():
                results[name] = max(results[name], steps_per_second(step, envs, args.seconds))
        bridges = [name for name in measurements if name.startswith("bridge")]
        shares = {name: client_cpu_share(measurements[name][0], args.seconds) for name in bridges}
        load = load_line()

    peer = results["gymnasium loop"]
    threads = torch.get_num_threads()
    print(f"CartPole-v1 environment steps/s, {setting}; torch threads: {threads}; "
          f"peer: plain Gymnasium loop over {GYM_ENVS} envs")
    # Other processes on the machine slow the measurements unevenly: print the load beside them.
    print(load)
    print(f"{'':30} {'envs':>6} {'steps/s':>14} {'x peer':>8}")
    for name, rate in results.items():
        envs = measurements[name][1]
        print(f"{name:30} {envs:>6} {rate:>14,.0f} {rate / peer:>8.2f}")
    checked, unchecked = results["torch session, checked"], results["torch session, unchecked"]
    print()
    print(
        f"torch session at N = {TORCH_ENVS} ({args.device}): the "
        f"contract check takes {checked / results['contract check alone']:.1%} of a checked "
        f"step timed alone, {1 - checked / unchecked:.1%} as checked minus unchecked "
        "(target < 10%)"
    )
    if args.device == "cpu":
        path = "one compiled pass (runtime.contract.screen)" if screen.library() else (
            f"NumPy extremes (compiled screen unavailable: {screen.unavailable_reason()})"
        )
        print(f"contract check on the CPU: {path}")
    in_process = results["gymnasium session"]
    for name in bridges:
        ratio = results[name] / in_process
        print(
            f"{name} / in-process Gymnasium session = {ratio:.2f}; "
            f"the client uses {shares[name]:.0%} of a core meanwhile"
        )
    one, two = (results[f"bridge, {servers} server(s)"] for servers in (1, 2))
    print(f"targets: 1 server >= 0.8 of in-process ({one / in_process:.2f}); "
          f"2 servers >= 1 server ({two / one:.2f})")


if __name__ == "__main__":
    main()

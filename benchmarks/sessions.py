"""Session speed on CartPole-v1: environment steps per second of every session kind.

The peer is plain Gymnasium: a Python loop over `gymnasium.make("CartPole-v1")` environments
that resets each one when it finishes, and Gymnasium's own `SyncVectorEnv`, both at
`GYM_ENVS` environments. Against them:

- the spec session (NumPy reference) at `GYM_ENVS` environments;
- the torch session at `TORCH_ENVS` environments, with its contract check (`step_checked`)
  and without it (the batched environment's `step` and the `Transition` record only), and the
  check alone, as a share of a checked step;
- the in-process Gymnasium session at `GYM_ENVS` environments;
- the bridge (`gymnasium-subprocess`) with 1, 2 and 4 servers sharing `GYM_ENVS` environments.

Every measurement steps with uniformly random actions for at least `SECONDS` seconds after
`WARMUP` steps and reports environment steps (batched steps times environments) per second.
Targets: the check costs under 10% of a torch step at `TORCH_ENVS`; the bridge reaches at
least half the steps/s of the in-process Gymnasium session. Run:
`python benchmarks/sessions.py [--device cuda] [--seconds 2] [--threads 1]`.
"""

import argparse
import time
from collections.abc import Callable

import gymnasium
import numpy as np
import torch

from runtime.boundary import Transition, check_transition
from runtime.sessions import CheckedSession, make_session

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

TORCH_THREADS = 1
"""Torch CPU threads: one by default, since intra-op threads that compete with other processes
for a few cores make CPU timings erratic."""


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


def session_stepper(session: CheckedSession, seed: int = 0) -> Callable[[], object]:
    """One `step_checked` with random actions per call."""
    generator = torch.Generator(device=session.device).manual_seed(seed)
    shape = (session.num_envs,)

    def step() -> object:
        actions = torch.randint(2, shape, generator=generator, device=session.device)
        return session.step_checked(actions)

    return step


def unchecked_stepper(session: CheckedSession, seed: int = 0) -> Callable[[], object]:
    """What a torch session's `step_checked` does, less the contract check."""
    generator = torch.Generator(device=session.device).manual_seed(seed)
    env = session.env
    observation = [env.observe()]

    def step() -> object:
        actions = torch.randint(2, (env.num_envs,), generator=generator, device=env.device)
        env_step = env.step(actions)
        transition = Transition(
            observation[0],
            actions,
            env_step.reward,
            env_step.next_observation,
            env_step.terminated,
            env_step.truncated,
        )
        observation[0] = env.observe()
        return transition

    return step


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


def main() -> None:
    """Measure every session kind and print steps/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="device of the torch session")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="seconds per measurement")
    parser.add_argument(
        "--threads", type=int, default=TORCH_THREADS, help="torch CPU threads (default 1)"
    )
    args = parser.parse_args()
    seconds = args.seconds
    torch.set_num_threads(args.threads)
    results: dict[str, float] = {}

    results["gymnasium loop"] = steps_per_second(gymnasium_loop(GYM_ENVS), GYM_ENVS, seconds)
    results["SyncVectorEnv"] = steps_per_second(sync_vector_env(GYM_ENVS), GYM_ENVS, seconds)
    with make_session("spec", ENV_ID, num_envs=GYM_ENVS, seed=0) as session:
        results["spec session"] = steps_per_second(session_stepper(session), GYM_ENVS, seconds)
    with make_session("gymnasium", ENV_ID, num_envs=GYM_ENVS, seed=0) as session:
        results["gymnasium session"] = steps_per_second(session_stepper(session), GYM_ENVS, seconds)
    for servers in SERVERS:
        with make_session(
            "gymnasium-subprocess", ENV_ID, num_envs=GYM_ENVS, num_servers=servers, seed=0
        ) as session:
            results[f"bridge, {servers} server(s)"] = steps_per_second(
                session_stepper(session), GYM_ENVS, seconds
            )
    with make_session("torch", ENV_ID, num_envs=TORCH_ENVS, device=args.device, seed=0) as session:
        synchronize = torch.cuda.synchronize if session.device.type == "cuda" else (lambda: None)

        def timed(step: Callable[[], object]) -> Callable[[], object]:
            return lambda: (step(), synchronize())

        results["torch session, checked"] = steps_per_second(
            timed(session_stepper(session)), TORCH_ENVS, seconds
        )
        results["torch session, unchecked"] = steps_per_second(
            timed(unchecked_stepper(session)), TORCH_ENVS, seconds
        )
        results["contract check alone"] = steps_per_second(
            timed(check_only(session)), TORCH_ENVS, seconds
        )

    peer = results["gymnasium loop"]
    print(f"CartPole-v1 environment steps/s; peer: plain Gymnasium loop over {GYM_ENVS} envs")
    print(f"{'':30} {'envs':>6} {'steps/s':>14} {'x peer':>8}")
    for name, rate in results.items():
        envs = TORCH_ENVS if name.startswith(("torch", "contract")) else GYM_ENVS
        print(f"{name:30} {envs:>6} {rate:>14,.0f} {rate / peer:>8.2f}")
    checked, unchecked = results["torch session, checked"], results["torch session, unchecked"]
    check_share = checked / results["contract check alone"]
    print()
    print(
        f"torch session at N = {TORCH_ENVS} ({args.device}, {args.threads} thread(s)): the "
        "contract check is "
        f"{check_share:.1%} of a checked step (target < 10%); unchecked / checked = "
        f"{unchecked / checked:.2f}"
    )
    in_process = results["gymnasium session"]
    for servers in SERVERS:
        ratio = results[f"bridge, {servers} server(s)"] / in_process
        print(
            f"bridge with {servers} server(s) / in-process Gymnasium session = {ratio:.2f} "
            "(target >= 0.5)"
        )


if __name__ == "__main__":
    main()

"""Properties of any Gymnasium environment that Gymnasium's own `check_env` does not check.

Each factory takes `make_env`, a zero-argument callable returning a fresh `gymnasium.Env` (your
environment class, or `lambda: gymnasium.make("MyEnv-v0")`), and returns a Hypothesis test:

- `matches_reference(make_env, make_reference)`: seeded action sequences replayed through both
  give the same transitions, resets after the ends of episodes included (for a port of a known
  environment: an observation from before the move, a reward off by one, a late termination);
- `same_seed_same_episode`: `reset(seed=s)` and the same actions give the same episode, on a
  fresh environment and again after earlier episodes on the same one (Gymnasium#1084: an
  environment seeded only at its first reset);
- `different_seeds_differ`: distinct seeds give distinct initial observations (a reset that
  ignores its seed, envpool#434), unless the environment starts deterministically;
- `observations_are_not_aliased`: an observation once returned is never changed by later steps
  or resets (an environment handing out one buffer it writes into, Gymnasium#1681);
- `contract_holds_over_random_rollouts`: random rollouts pass the trust-boundary contract
  derived from the spaces (`runtime.contract.Contract.from_spaces`).

Observations and rewards are compared exactly unless `atol` is given. Episodes are bounded by
`MAX_STEPS` actions; the actions are drawn by Hypothesis, so a failure shrinks to a short one.
"""

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from checked_rl.properties.strategies.envs import SEEDS
from checked_rl.runtime.sessions import GymnasiumSession

__all__ = [
    "MAX_STEPS",
    "contract_holds_over_random_rollouts",
    "different_seeds_differ",
    "matches_reference",
    "observations_are_not_aliased",
    "same_seed_same_episode",
]

MAX_STEPS = 60
"""The most actions one example takes."""

DISTINCT_SEEDS = 8
"""`different_seeds_differ` resets with this many distinct seeds."""

MakeEnv = Callable[[], gymnasium.Env]
Step = tuple[Any, float, bool, bool]


def _actions(env: gymnasium.Env, data: st.DataObject) -> list[Any]:
    """Up to `MAX_STEPS` actions of `env.action_space`, drawn by Hypothesis (shrinkable)."""
    space = env.action_space
    length = data.draw(st.integers(1, MAX_STEPS), label="steps")
    if isinstance(space, gymnasium.spaces.Discrete):
        values = st.integers(int(space.start), int(space.start + space.n - 1))
        return data.draw(st.lists(values, min_size=length, max_size=length), label="actions")
    space.seed(data.draw(SEEDS, label="action seed"))
    return [space.sample() for _ in range(length)]


def _episode(env: gymnasium.Env, seed: int, actions: list[Any]) -> list[Step]:
    """Reset with `seed`, then step `actions`, resetting (unseeded) where an episode ends.

    Records copies: `[(reset observation, 0, False, False), (observation, reward, terminated,
    truncated), ...]`, with the reset observation after an end appended as a step of its own.
    """
    observation, _ = env.reset(seed=seed)
    record: list[Step] = [(np.array(observation, copy=True), 0.0, False, False)]
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        record.append((np.array(observation, copy=True), float(reward), terminated, truncated))
        if terminated or truncated:
            observation, _ = env.reset()
            record.append((np.array(observation, copy=True), 0.0, False, False))
    return record


def _same(a: Any, b: Any, atol: float) -> bool:
    """Exactly equal (NaN equal to NaN), or within `atol`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if atol == 0.0:
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.allclose(a, b, rtol=0.0, atol=atol, equal_nan=True))


def _first_difference(got: list[Step], want: list[Step], atol: float) -> str | None:
    """Where two recorded episodes first differ, as a sentence; None where they agree."""
    names = ("observation", "reward", "terminated", "truncated")
    for index, (mine, theirs) in enumerate(zip(got, want, strict=False)):
        for name, a, b in zip(names, mine, theirs, strict=True):
            if not _same(a, b, atol):
                return f"record {index} (0 is the reset): {name} {a!r} != {b!r}"
    if len(got) != len(want):
        return f"{len(got)} records != {len(want)} records"
    return None


def matches_reference(
    make_env: MakeEnv, make_reference: MakeEnv, *, atol: float = 0.0
) -> Callable[[], None]:
    """The environment replays every seeded action sequence as the reference does.

    Assumes both are deterministic given `reset(seed=...)` and the actions (unseeded resets
    after an episode's end going on with the seeded generator), with array observations
    comparable as float64 and any action space (`Discrete` drawn by Hypothesis, others by the
    reference's seeded `sample()`); exact unless `atol`. Accepts a port that draws the same
    numbers from the seed in the same order; one that draws its start differently (another
    generator, another order) is rejected although it may be a correct environment.
    """

    @given(seed=SEEDS, data=st.data())
    def prop(seed: int, data: st.DataObject) -> None:
        env, reference = make_env(), make_reference()
        try:
            actions = _actions(reference, data)
            difference = _first_difference(
                _episode(env, seed, actions), _episode(reference, seed, actions), atol
            )
            assert difference is None, f"differs from the reference at {difference}"
        finally:
            env.close()
            reference.close()

    return prop


def same_seed_same_episode(make_env: MakeEnv, *, atol: float = 0.0) -> Callable[[], None]:
    """One seed and one action sequence give one episode: on a fresh environment, and again
    on the same environment after it ran (repeated resets with the seed).

    Assumes the environment should be deterministic given its seed and actions (Gymnasium's
    reset contract) and array observations; exact unless `atol`. Accepts any environment that
    reseeds everything random at `reset(seed=...)`, however it draws; it rejects one seeded
    only at its first reset or one with a source of randomness outside its seed.
    """

    @given(seed=SEEDS, data=st.data())
    def prop(seed: int, data: st.DataObject) -> None:
        env, fresh = make_env(), make_env()
        try:
            actions = _actions(env, data)
            first = _episode(env, seed, actions)
            again = _episode(env, seed, actions)
            difference = _first_difference(again, first, atol)
            again_message = f"reset(seed={seed}) again gave another episode: {difference}"
            assert difference is None, again_message
            difference = _first_difference(_episode(fresh, seed, actions), first, atol)
            assert difference is None, f"a fresh environment, same seed, differs: {difference}"
        finally:
            env.close()
            fresh.close()

    return prop


def different_seeds_differ(make_env: MakeEnv) -> Callable[[], None]:
    """`DISTINCT_SEEDS` distinct seeds do not all give the same initial observation.

    Only for environments whose initial state is random: one that always starts in the same
    state (GridWorld) fails it by design.

    Assumes a random start whose `DISTINCT_SEEDS` draws are not all equal (an environment with
    very few start states could, rarely, draw one for every seed). Accepts any environment whose
    seeded reset uses its seed; it wrongly rejects a deterministic start, so do not run it on one.
    """

    @given(seeds=st.lists(SEEDS, min_size=DISTINCT_SEEDS, max_size=DISTINCT_SEEDS, unique=True))
    def prop(seeds: list[int]) -> None:
        env = make_env()
        try:
            starts = [np.array(env.reset(seed=seed)[0], copy=True) for seed in seeds]
        finally:
            env.close()
        distinct = {start.tobytes() for start in starts}
        assert len(distinct) > 1, (
            f"{len(seeds)} distinct seeds {seeds} gave one initial observation "
            f"{starts[0].tolist()}: reset ignores its seed"
        )

    return prop


def observations_are_not_aliased(make_env: MakeEnv) -> Callable[[], None]:
    """No observation an environment returned changes afterwards: not by later steps, not by
    resets (each is compared with the copy taken when it was returned).

    Assumes array observations (anything `np.array` copies) and any action space. Accepts an
    environment that returns a new array (or an immutable one) every time, whatever its
    internal buffers; exact comparison, NaN equal to NaN.
    """

    @given(seed=SEEDS, data=st.data())
    def prop(seed: int, data: st.DataObject) -> None:
        env = make_env()
        try:
            actions = _actions(env, data)
            returned: list[tuple[str, Any, np.ndarray]] = []

            def keep(what: str, observation: Any) -> None:
                returned.append((what, observation, np.array(observation, copy=True)))

            keep("reset", env.reset(seed=seed)[0])
            for step, action in enumerate(actions):
                observation, _, terminated, truncated, _ = env.step(action)
                keep(f"step {step}", observation)
                if terminated or truncated:
                    keep(f"reset after step {step}", env.reset()[0])
            keep("final reset", env.reset(seed=seed + 1)[0])
        finally:
            env.close()
        for what, observation, copy in returned:
            assert _same(observation, copy, 0.0), (
                f"the observation returned by {what} was changed later: now "
                f"{np.asarray(observation).tolist()}, returned as {copy.tolist()} (the "
                f"environment reuses its observation buffer; return a copy)"
            )

    return prop


def contract_holds_over_random_rollouts(
    make_env: MakeEnv, *, num_envs: int = 2
) -> Callable[[], None]:
    """Random rollouts of `num_envs` environments in a checked `gymnasium` session never break
    the contract of their spaces (the `ContractViolation` names field, environment and step).

    Assumes environments a `GymnasiumSession` takes (a `Box` observation space, a `Discrete`
    action space; actions drawn uniformly from `0..n-1`) and same-step autoreset by the
    session. Accepts any environment whose observations stay finite and inside the `Box`, in
    its dtype, with finite rewards; a reward range is not checked beyond finiteness unless the
    contract derived from the spaces says so.
    """

    @given(seed=SEEDS, data=st.data())
    def prop(seed: int, data: st.DataObject) -> None:
        with GymnasiumSession([make_env() for _ in range(num_envs)]) as session:
            session.reset(seed=seed)
            length = data.draw(st.integers(1, MAX_STEPS), label="steps")
            for _ in range(length):
                step = data.draw(
                    st.lists(st.integers(0, session.n_actions - 1), min_size=num_envs,
                             max_size=num_envs),
                    label="actions",
                )
                session.step_checked(torch.tensor(step, dtype=torch.int64))

    return prop

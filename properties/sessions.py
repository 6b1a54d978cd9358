"""Stateful properties of checked sessions: Hypothesis state machines beside a simple model.

Each factory takes a session factory (a zero-argument callable returning a fresh
`runtime.sessions.CheckedSession`) and returns a `RuleBasedStateMachine` class; run it with

    TestSpecSession = session_machine(lambda: make_session("spec", num_envs=3)).TestCase

so any session kind, including ones written elsewhere, can be checked by the same machines.
`state_round_trip(make_session)` returns a Hypothesis test instead: an exact resume through
`state_dict()` / `load_state_dict()`.
"""

import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from torch import Tensor

from checked_rl.properties.strategies.envs import SEEDS
from checked_rl.runtime.contract import ContractViolation, Transition
from checked_rl.runtime.sessions.base import CheckedSession, SessionStateError
from checked_rl.spec.contract import FIELDS

__all__ = [
    "MAX_BURST",
    "MAX_RESUMED_STEPS",
    "SEEDS",
    "session_machine",
    "sessions_agree_machine",
    "state_round_trip",
]

MAX_BURST = 25
"""The most steps one rule takes (bursts of random actions reach episode ends quickly)."""

MAX_RESUMED_STEPS = 2 * MAX_BURST
"""The most steps `state_round_trip` takes before capturing a state, and after it."""

SessionFactory = Callable[[], CheckedSession]
ReferenceReset = Callable[[np.random.Generator], np.ndarray]


def _actions(session: CheckedSession, rng: np.random.Generator) -> Tensor:
    """One random valid action per environment, on the session's device."""
    actions = rng.integers(0, session.n_actions, size=session.num_envs)
    return torch.as_tensor(actions, dtype=torch.int64, device=session.device)


def _close(expected: np.ndarray, actual: Tensor, atol: float) -> bool:
    """`actual` equals `expected` exactly (atol 0) or within `atol`, compared in float64."""
    actual64 = actual.detach().cpu().double().numpy()
    expected64 = np.asarray(expected, dtype=np.float64)
    if atol == 0.0:
        return bool(np.array_equal(actual64, expected64))
    return bool(np.allclose(actual64, expected64, rtol=0.0, atol=atol))


def session_machine(
    make_session: SessionFactory,
    *,
    reference_reset: ReferenceReset | None = None,
    in_reset_distribution: Callable[[Tensor], bool] | None = None,
    atol: float = 0.0,
) -> type[RuleBasedStateMachine]:
    """A state machine checking one session against the checked-session protocol.

    Invariants checked after every step: the transition's `observation` is the previous
    `observe()`, its `action` the actions given, every field lies on `session.device`, and
    `step_count` counts the steps since the reset. Afterwards `observe()` equals
    `next_observation` where the episode goes on and is a reset observation where it ended:
    exactly `reference_reset(rng_i)` (to `atol`) when the last reset was seeded and
    `reference_reset` is given (environment i replays `np.random.default_rng(seed + i)`, one
    draw per reset), and inside `in_reset_distribution` in any case. An out-of-range action is
    rejected with a `ContractViolation` naming the field, environment and step, after which
    the session refuses `step_checked` and `observe` until it is reset.

    Assumes a session with a discrete action space (`n_actions`; actions are drawn uniformly
    from `0..n_actions-1`), same-step autoreset (`observe()` after a done step is already the
    reset observation), and, with `reference_reset`, environment `i` reset from
    `np.random.default_rng(seed + i)` with one draw per reset; compares exactly unless `atol`
    is given; without `reference_reset` and `in_reset_distribution`, reset observations are not
    checked. Accepts any session kind (spec, torch, Gymnasium, subprocess, vector) that keeps
    the protocol on any device; it rejects one that keeps stepping after a rejected action, and,
    through the reset checks, one that autoresets on the next step.

    Args:
        make_session: returns a fresh session (closed by the machine's teardown).
        reference_reset: the observation a reset draws from an environment's generator.
        in_reset_distribution: whether one observation `[*S]` can come from a reset.
        atol: tolerance for comparisons with `reference_reset` (0: exact).
    """

    class SessionMachine(RuleBasedStateMachine):
        """One session beside a model of its observations and generators."""

        def __init__(self) -> None:
            super().__init__()
            self.session = make_session()
            self.observation: Tensor | None = None
            self.rngs: list[np.random.Generator] | None = None
            self.steps = 0
            self.broken = False

        def check_reset_rows(self, observation: Tensor, rows: list[int]) -> None:
            """The listed rows of `observation` are reset observations (replayed if known)."""
            for i in rows:
                if in_reset_distribution is not None:
                    assert in_reset_distribution(observation[i]), (i, observation[i])
                if self.rngs is not None and reference_reset is not None:
                    expected = reference_reset(self.rngs[i])
                    assert _close(expected, observation[i], atol), (i, expected, observation[i])

        @initialize(seed=SEEDS)
        def first_reset(self, seed: int) -> None:
            self.reset(seed)

        @rule(seed=st.none() | SEEDS)
        def reset(self, seed: int | None) -> None:
            observation = self.session.reset(seed=seed)
            num_envs, shape = self.session.num_envs, self.session.observation_shape
            assert tuple(observation.shape) == (num_envs, *shape)
            assert observation.device == self.session.device
            assert torch.equal(self.session.observe(), observation)
            self.rngs = None
            if seed is not None:
                self.rngs = [np.random.default_rng(seed + i) for i in range(num_envs)]
            self.check_reset_rows(observation, list(range(num_envs)))
            self.observation, self.steps, self.broken = observation, 0, False

        def step_once(self, actions: Tensor) -> Transition:
            """Step, and check the transition and the next observations against the model."""
            assert self.observation is not None
            transition = self.session.step_checked(actions)
            self.steps += 1
            assert isinstance(transition, Transition)
            for name in FIELDS:
                assert getattr(transition, name).device == self.session.device, name
            assert torch.equal(transition.observation, self.observation)
            assert torch.equal(transition.action, actions)
            assert self.session.step_count == self.steps
            observation = self.session.observe()
            done = transition.done
            assert torch.equal(observation[~done], transition.next_observation[~done])
            self.check_reset_rows(observation, done.nonzero().flatten().tolist())
            self.observation = observation
            return transition

        @precondition(lambda self: not self.broken)
        @rule(seed=SEEDS, count=st.integers(1, MAX_BURST))
        def burst(self, seed: int, count: int) -> None:
            rng = np.random.default_rng(seed)
            for _ in range(count):
                self.step_once(_actions(self.session, rng))

        @precondition(lambda self: not self.broken)
        @rule(data=st.data())
        def invalid_action(self, data: st.DataObject) -> None:
            n, n_actions = self.session.num_envs, self.session.n_actions
            env = data.draw(st.integers(0, n - 1), label="env")
            bad = data.draw(st.sampled_from((-1, n_actions, n_actions + 7)), label="action")
            actions = torch.zeros(n, dtype=torch.int64)
            actions[env] = bad
            try:
                self.session.step_checked(actions.to(self.session.device))
            except ContractViolation as error:
                found = error.violation
                assert (found.field, found.env, found.step) == ("action", env, self.steps)
                assert f"action[env {env}, step {self.steps}] = {bad}" in str(error)
            else:
                raise AssertionError(f"action {bad} in environment {env} was accepted")
            self.broken = True
            for call in (lambda: self.session.step_checked(actions * 0), self.session.observe):
                try:
                    call()
                except SessionStateError as refusal:
                    assert "reset" in str(refusal)
                else:
                    raise AssertionError("a session that rejected a step went on without reset")

        @invariant()
        def observe_is_the_model(self) -> None:
            if self.observation is not None and not self.broken:
                assert torch.equal(self.session.observe(), self.observation)

        def teardown(self) -> None:
            self.session.close()

    return SessionMachine


def sessions_agree_machine(
    make_sessions: Mapping[str, SessionFactory],
    *,
    atol: Mapping[str, float] | None = None,
) -> type[RuleBasedStateMachine]:
    """A state machine stepping several sessions alike and checking they agree.

    All sessions are reset with the same seeds and given the same actions; every transition
    and every following `observe()` must equal the first session's, exactly or, for a session
    named in `atol`, to that tolerance in float64 (observations and rewards; actions and flags
    always exactly).

    Assumes sessions with the same number of environments and a discrete action space, each
    deterministic given its reset seed and actions (the same seed gives the same episodes in
    every session). Accepts any kinds that draw the same numbers from a seed; bit for bit unless
    named in `atol`, so it rejects a float32 session compared exactly with a float64 one (give
    it a tolerance).

    Args:
        make_sessions: name -> factory; the first one is the reference.
        atol: name -> tolerance for the sessions not expected to agree bit for bit.
    """
    tolerances = dict(atol or {})

    def agree(name: str, reference: Tensor, other: Tensor, what: str) -> None:
        exact = not other.is_floating_point()
        tolerance = 0.0 if exact else tolerances.get(name, 0.0)
        assert tuple(other.shape) == tuple(reference.shape), (name, what)
        assert _close(reference.cpu().double().numpy(), other, tolerance), (
            f"{name} disagrees with the reference on {what}: {other} vs {reference}"
        )

    class AgreementMachine(RuleBasedStateMachine):
        """Sessions of different kinds side by side."""

        def __init__(self) -> None:
            super().__init__()
            self.sessions: dict[str, CheckedSession] = {}
            for name, factory in make_sessions.items():
                self.sessions[name] = factory()

        def compare(self, results: dict[str, Any], what: str) -> None:
            names = list(results)
            for name in names[1:]:
                agree(name, results[names[0]], results[name], what)

        @initialize(seed=SEEDS)
        def first_reset(self, seed: int) -> None:
            self.reset(seed)

        @rule(seed=SEEDS)
        def reset(self, seed: int) -> None:
            results = {name: s.reset(seed=seed) for name, s in self.sessions.items()}
            self.compare(results, f"reset(seed={seed})")

        @rule(seed=SEEDS, count=st.integers(1, MAX_BURST))
        def burst(self, seed: int, count: int) -> None:
            rng = np.random.default_rng(seed)
            reference = next(iter(self.sessions.values()))
            for _ in range(count):
                actions = _actions(reference, rng).cpu()
                transitions = {
                    name: s.step_checked(actions.to(s.device)) for name, s in self.sessions.items()
                }
                step = reference.step_count - 1
                for field in FIELDS:
                    fields = {name: getattr(t, field) for name, t in transitions.items()}
                    self.compare(fields, f"{field} at step {step}")
                observed = {name: s.observe() for name, s in self.sessions.items()}
                self.compare(observed, f"observe() after step {step}")

        def teardown(self) -> None:
            for session in self.sessions.values():
                session.close()

    return AgreementMachine


def state_round_trip(
    make_session: SessionFactory, *, max_steps: int = MAX_RESUMED_STEPS
) -> Callable[[], None]:
    """A Hypothesis test: a session resumed from its `state_dict()` continues bit for bit.

    Reset with a drawn seed, take a drawn number of random steps and capture
    `state = session.state_dict()`; take `k` more steps, recording every transition, `observe()`
    and `step_count`. Then load `state` back into the same session, and, after a trip through
    `torch.save` / `torch.load(weights_only=True)` (a checkpoint's), into a fresh session from
    `make_session` that was never reset: the same `k` actions must give the same transitions,
    observations and step counts, compared with `torch.equal`.

    Assumes a session with a discrete action space whose `state_dict()` holds everything that
    decides its future (environment states, generators, step counts, pending resets) in values
    `torch.load(weights_only=True)` can read (tensors, numbers, strings, lists, dicts). Accepts
    any session that resumes bit for bit; it rejects one that resumes only approximately or
    whose state needs pickled objects, as a checkpoint could not hold it.

    Args:
        make_session: returns a fresh session (closed by the test); every call the same kind
            and number of environments.
        max_steps: the most steps taken before capturing, and after.
    """

    @given(
        seed=SEEDS,
        action_seed=SEEDS,
        before=st.integers(0, max_steps),
        after=st.integers(1, max_steps),
    )
    def prop(seed: int, action_seed: int, before: int, after: int) -> None:
        rng = np.random.default_rng(action_seed)
        with make_session() as session:
            session.reset(seed=seed)
            for _ in range(before):
                session.step_checked(_actions(session, rng))
            state = session.state_dict()
            actions = [_actions(session, rng) for _ in range(after)]
            expected = _replay(session, actions)
            session.load_state_dict(state)
            _assert_same_run(expected, _replay(session, actions), "the same session")
            with make_session() as fresh:
                fresh.load_state_dict(_through_a_file(state))
                _assert_same_run(expected, _replay(fresh, actions), "a fresh session")

    return prop


Run = list[tuple[Transition | None, Tensor, int]]


def _replay(session: CheckedSession, actions: list[Tensor]) -> Run:
    """`observe()` and `step_count` now, then each transition followed by the two again."""
    run: Run = [(None, session.observe(), session.step_count)]
    for action in actions:
        transition = session.step_checked(action)
        run.append((transition, session.observe(), session.step_count))
    return run


def _assert_same_run(expected: Run, got: Run, where: str) -> None:
    """Every transition field, observation and step count of `got` equals `expected`'s."""
    for k, (want, have) in enumerate(zip(expected, got, strict=True)):
        at = f"{where}, {k} steps after loading the state"
        if want[0] is not None and have[0] is not None:
            for name in FIELDS:
                ours, theirs = getattr(have[0], name), getattr(want[0], name)
                assert torch.equal(ours, theirs), f"{name} ({at}): {ours}, expected {theirs}"
        assert torch.equal(have[1], want[1]), f"observe() ({at}): {have[1]}, expected {want[1]}"
        assert have[2] == want[2], f"step_count ({at}): {have[2]}, expected {want[2]}"


def _through_a_file(state: dict[str, Any]) -> dict[str, Any]:
    """`state` saved with `torch.save` and read back as a checkpoint is: `weights_only=True`."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)

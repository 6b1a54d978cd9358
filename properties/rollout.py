"""Properties of rollout collection: fixed horizon, contract-valid transitions, spec GAE.

Each factory takes the implementation under test and returns a zero-argument Hypothesis test:

- `collect`: a function `collect(session, policy, horizon, *, generator) -> Rollout`
  (`runtime.ppo.collect.collect` or a user's own);
- `make_session`: a function `make_session(num_envs) -> session` returning a fresh checked
  session (the property resets and closes it).

The policy is a small randomly initialised `ActorCritic`, so episodes end inside rollouts and
the done handling is exercised.
"""

from collections.abc import Callable

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from checked_rl.properties.strategies.envs import SEEDS
from checked_rl.properties.strategies.rollouts import discounts
from checked_rl.properties.tolerances import GAE_TOLERANCE, POLICY_TOLERANCE
from checked_rl.runtime.contract import check_transition
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.rollout import Rollout, to_training_batch
from checked_rl.spec import returns as spec_returns

__all__ = [
    "GAE_TOLERANCE",
    "MAX_ENVS",
    "MAX_HORIZON",
    "batch_matches_spec_gae",
    "rollout_has_fixed_horizon",
    "rollout_records_policy_outputs",
    "rollout_transitions_satisfy_contract",
]

MAX_HORIZON = 48
"""Longest rollout drawn (random CartPole episodes last about 20 steps, so most end inside)."""
MAX_ENVS = 4
"""Most environments drawn."""
POLICY_HIDDEN = 8
"""Hidden width of the random policy."""
EXPENSIVE_EXAMPLES = 20
"""Upper bound on examples: each one steps a real session up to MAX_HORIZON times."""

Collect = Callable[..., Rollout]
MakeSession = Callable[[int], object]


def _random_policy(session: object, seed: int) -> ActorCritic:
    """A small actor-critic initialised from `seed`, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = ActorCritic(session.observation_shape, session.n_actions, POLICY_HIDDEN)
    return policy.to(session.device)


def _rollout(
    collect: Collect, make_session: MakeSession, horizon: int, num_envs: int, seed: int
) -> tuple[object, ActorCritic, Rollout]:
    """A fresh session of `num_envs` reset with `seed`, a random policy, and the rollout of
    `horizon` steps it collected."""
    session = make_session(num_envs)
    session.reset(seed=seed)
    policy = _random_policy(session, seed)
    generator = torch.Generator(device=session.device)
    generator.manual_seed(seed)
    return session, policy, collect(session, policy, horizon, generator=generator)


_horizons = st.integers(1, MAX_HORIZON)
_envs = st.integers(1, MAX_ENVS)


def _reduce_examples(test: Callable[[], None]) -> Callable[[], None]:
    """Cap the profile's examples at EXPENSIVE_EXAMPLES (never raises them)."""
    current = settings.default.max_examples
    return settings(max_examples=min(current, EXPENSIVE_EXAMPLES))(test)


def rollout_has_fixed_horizon(collect: Collect, make_session: MakeSession) -> Callable[[], None]:
    """The rollout holds exactly T x N steps: every field starts with `[T, N]`.

    Assumes a session from `make_session(num_envs)` with discrete actions and a
    `collect(session, policy, horizon, *, generator=...)` that takes the runtime's `ActorCritic`
    and returns a `runtime.ppo.rollout.Rollout`; accepts any collector returning that dataclass,
    whatever it does inside (at most `EXPENSIVE_EXAMPLES` examples).
    """

    @given(horizon=_horizons, num_envs=_envs, seed=SEEDS)
    def test(horizon: int, num_envs: int, seed: int) -> None:
        session, _, rollout = _rollout(collect, make_session, horizon, num_envs, seed)
        session.close()
        assert isinstance(rollout, Rollout)
        assert (rollout.horizon, rollout.num_envs) == (horizon, num_envs)
        for name in Rollout.__dataclass_fields__:
            shape = tuple(getattr(rollout, name).shape)
            assert shape[:2] == (horizon, num_envs), (name, shape)

    return _reduce_examples(test)


def rollout_records_policy_outputs(
    collect: Collect, make_session: MakeSession
) -> Callable[[], None]:
    """Values, next values and log-probabilities are the collecting policy's own numbers.

    `values[t]` is V(observations[t]), `next_values[t]` is V(next_observations[t]) (the true
    successor, also where the episode ended, so truncated steps bootstrap correctly), and
    `log_probs[t]` is log pi(actions[t] | observations[t]).

    Assumes a categorical policy (log-probabilities are `log_softmax(logits)` of the action
    taken) and sessions and collectors as `rollout_has_fixed_horizon`; compares to
    `POLICY_TOLERANCE` of the values' dtype, so it accepts a collector that evaluates the policy
    in any batch layout (one forward per step or one for the whole rollout), and rejects one that
    stores the value of the reset observation as `next_values` at a done step.
    """

    @given(horizon=_horizons, num_envs=_envs, seed=SEEDS)
    def test(horizon: int, num_envs: int, seed: int) -> None:
        session, policy, rollout = _rollout(collect, make_session, horizon, num_envs, seed)
        session.close()
        flat = horizon * num_envs
        with torch.no_grad():
            logits, values = policy(rollout.observations.reshape(flat, *session.observation_shape))
            _, next_values = policy(
                rollout.next_observations.reshape(flat, *session.observation_shape)
            )
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, rollout.actions.reshape(flat, 1))
        tolerance = POLICY_TOLERANCE[values.dtype]
        for name, expected in (
            ("values", values),
            ("next_values", next_values),
            ("log_probs", log_probs),
        ):
            torch.testing.assert_close(
                getattr(rollout, name),
                expected.reshape(horizon, num_envs),
                rtol=tolerance,
                atol=tolerance,
                msg=lambda m, name=name: f"{name}: {m}",
            )

    return _reduce_examples(test)


def rollout_transitions_satisfy_contract(
    collect: Collect, make_session: MakeSession
) -> Callable[[], None]:
    """Every stored step obeys the session's contract, and consecutive steps chain up.

    Chaining: where step t did not end its episode, the observation of step t + 1 is the
    next observation of step t, so no stored transition mixes two episodes.

    Assumes a session whose `contract` the stored transitions should obey and sessions and
    collectors as `rollout_has_fixed_horizon`; compares observations exactly (`torch.equal`), so
    it accepts any collector that stores the session's own tensors (copied or not) and rejects
    one whose steps are off by one (a step starting from an observation other than its
    predecessor's next observation). A reset observation stored as `next_observations` at a
    done step obeys the contract: `rollout_records_policy_outputs` does not see it either.
    """

    @given(horizon=_horizons, num_envs=_envs, seed=SEEDS)
    def test(horizon: int, num_envs: int, seed: int) -> None:
        session, _, rollout = _rollout(collect, make_session, horizon, num_envs, seed)
        contract = session.contract
        session.close()
        for t in range(horizon):
            check_transition(contract, rollout.transition(t), step=t)
        done = rollout.terminated | rollout.truncated
        for t in range(horizon - 1):
            going = ~done[t]
            assert torch.equal(
                rollout.observations[t + 1][going], rollout.next_observations[t][going]
            ), f"step {t + 1} does not start where step {t} ended"

    return _reduce_examples(test)


def batch_matches_spec_gae(
    collect: Collect,
    make_session: MakeSession,
    *,
    to_batch: Callable[..., object] = to_training_batch,
) -> Callable[[], None]:
    """The training batch agrees with spec GAE and lambda-returns, environment by environment.

    Column n of the unnormalised advantages and of the value targets, reshaped to `[T, N]`,
    equals `spec.returns.gae` / `spec.returns.lambda_returns` on column n of the rollout.

    Assumes the rollouts a real session and collector produce (so `next_values[t]` is, to the
    policy's rounding, `values[t + 1]` wherever step `t` did not end an episode) and `to_batch`
    called as `to_batch(rollout, gamma=..., lam=..., normalize=False)` returning `advantages` and
    `returns` flattened from `[T, N]` in row-major order; compares to `GAE_TOLERANCE` of the
    advantages' dtype. Accepts any GAE inside `to_batch`, the TD(lambda) recursion included.
    """

    @given(horizon=_horizons, num_envs=_envs, seed=SEEDS, gamma=discounts(), lam=discounts())
    def test(horizon: int, num_envs: int, seed: int, gamma: float, lam: float) -> None:
        session, _, rollout = _rollout(collect, make_session, horizon, num_envs, seed)
        session.close()
        batch = to_batch(rollout, gamma=gamma, lam=lam, normalize=False)
        advantages = batch.advantages.reshape(horizon, num_envs).double().cpu().numpy()
        targets = batch.returns.reshape(horizon, num_envs).double().cpu().numpy()
        tolerance = GAE_TOLERANCE[batch.advantages.dtype]
        columns = {
            name: getattr(rollout, name).double().cpu().numpy()
            for name in ("rewards", "values", "next_values")
        }
        flags = {name: getattr(rollout, name).cpu().numpy() for name in ("terminated", "truncated")}
        for n in range(num_envs):
            trace = {name: column[:, n] for name, column in {**columns, **flags}.items()}
            expected = spec_returns.gae(**trace, gamma=gamma, lam=lam)
            np.testing.assert_allclose(
                advantages[:, n],
                expected,
                rtol=tolerance,
                atol=tolerance,
                err_msg=f"advantages of env {n}",
            )
            expected = spec_returns.lambda_returns(**trace, gamma=gamma, lam=lam)
            np.testing.assert_allclose(
                targets[:, n],
                expected,
                rtol=tolerance,
                atol=tolerance,
                err_msg=f"value targets of env {n}",
            )

    return _reduce_examples(test)

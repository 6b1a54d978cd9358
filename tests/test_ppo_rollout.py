"""Rollouts: the fixed-horizon record, its training batch, and collection over every session."""

import dataclasses

import pytest
import torch

from checked_rl.properties.rollout import (
    batch_matches_spec_gae,
    rollout_has_fixed_horizon,
    rollout_records_policy_outputs,
    rollout_transitions_satisfy_contract,
)
from checked_rl.runtime import returns
from checked_rl.runtime.ppo.collect import collect
from checked_rl.runtime.ppo.rollout import Rollout, to_training_batch
from checked_rl.runtime.sessions import make_session

T, N, OBS = 5, 3, 4


def _rollout(**changes: torch.Tensor) -> Rollout:
    """A hand-made rollout of T x N CartPole-shaped steps with every field filled."""
    generator = torch.Generator().manual_seed(0)
    fields = dict(
        observations=torch.randn(T, N, OBS, generator=generator),
        actions=torch.randint(0, 2, (T, N), generator=generator),
        log_probs=-torch.rand(T, N, generator=generator),
        rewards=torch.ones(T, N),
        terminated=torch.zeros(T, N, dtype=torch.bool),
        truncated=torch.zeros(T, N, dtype=torch.bool),
        values=torch.randn(T, N, generator=generator),
        next_values=torch.randn(T, N, generator=generator),
        next_observations=torch.randn(T, N, OBS, generator=generator),
    )
    fields["terminated"][2, 1] = True
    fields["truncated"][3, 0] = True
    fields.update(changes)
    return Rollout(**fields)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Rollout)])
@pytest.mark.parametrize("axis", [0, 1])
def test_rollout_refuses_a_field_of_another_length(name: str, axis: int) -> None:
    value = getattr(_rollout(), name)
    shorter = value.narrow(axis, 0, value.shape[axis] - 1)
    with pytest.raises(ValueError, match=f"Rollout.{name}"):
        _rollout(**{name: shorter})


def test_rollout_refuses_wrong_dtypes() -> None:
    for actions in (torch.zeros(T, N, dtype=torch.int32), torch.zeros(T, N),
                    torch.zeros(T, N, 1, dtype=torch.int64)):
        with pytest.raises(ValueError, match=r"Rollout.actions must be \[T, N\] int64"):
            _rollout(actions=actions)
    assert _rollout(actions=torch.zeros(T, N, 2)).actions.shape == (T, N, 2)  # Box actions
    with pytest.raises(ValueError, match=r"Rollout.terminated must have dtype torch.bool"):
        _rollout(terminated=torch.zeros(T, N))
    with pytest.raises(ValueError, match=r"Rollout.rewards must be floating"):
        _rollout(rewards=torch.ones(T, N, dtype=torch.int64))


def test_rollout_takes_observations_of_any_dtype_shared_by_next_observations() -> None:
    cells = torch.zeros(T, N, 2, dtype=torch.int64)
    assert _rollout(observations=cells, next_observations=cells).observations.dtype == torch.int64
    with pytest.raises(ValueError, match=r"next_observations must have the shape .* and dtype"):
        _rollout(observations=cells, next_observations=cells.float())


def test_training_batch_uses_runtime_gae_and_unnormalised_targets() -> None:
    rollout = _rollout()
    batch = to_training_batch(rollout, gamma=0.9, lam=0.8, normalize=True)
    advantages = returns.gae(
        rewards=rollout.rewards, values=rollout.values, next_values=rollout.next_values,
        terminated=rollout.terminated, truncated=rollout.truncated, gamma=0.9, lam=0.8,
    )
    targets = returns.lambda_returns(
        rewards=rollout.rewards, values=rollout.values, next_values=rollout.next_values,
        terminated=rollout.terminated, truncated=rollout.truncated, gamma=0.9, lam=0.8,
    )
    assert len(batch) == T * N
    torch.testing.assert_close(batch.returns, targets.reshape(-1), rtol=0, atol=0)
    torch.testing.assert_close(
        batch.advantages, returns.normalize_advantages(advantages).reshape(-1), rtol=0, atol=0
    )
    # Sample k of the batch is step (k // N, k % N) of the rollout.
    torch.testing.assert_close(batch.observations[N + 2], rollout.observations[1, 2])
    assert batch.actions[N + 2] == rollout.actions[1, 2]
    assert abs(float(batch.advantages.mean())) < 1e-6
    assert abs(float(batch.advantages.std(correction=0)) - 1.0) < 1e-5


def test_transition_view_of_a_step() -> None:
    rollout = _rollout()
    transition = rollout.transition(2)
    assert torch.equal(transition.next_observation, rollout.next_observations[2])
    assert transition.terminated.tolist() == [False, True, False]


def test_collect_refuses_a_non_positive_horizon() -> None:
    with make_session("torch", num_envs=2) as session:
        session.reset(seed=0)
        with pytest.raises(ValueError, match="horizon must be a positive integer, got 0"):
            collect(session, lambda obs: (obs[:, :2], obs[:, 0]), 0)


TIME_LIMIT = 16
"""Episodes of the property sessions are truncated after this many steps, so that rollouts hold
truncations as well as terminations (a random policy's episodes last about 20 steps)."""


def _maker(kind: str):
    """`make_session` for the properties: a fresh CartPole session of the given kind."""
    limit = {"max_episode_steps": TIME_LIMIT}
    return lambda num_envs: make_session(kind, num_envs=num_envs, make_kwargs=limit)


def test_property_sessions_truncate_and_terminate() -> None:
    """The sessions the properties use produce both kinds of episode end."""
    with _maker("torch")(4) as s:
        s.reset(seed=0)
        rollout = collect(s, lambda obs: (torch.zeros(len(obs), 2), obs[:, 0]), 3 * TIME_LIMIT,
                          generator=torch.Generator().manual_seed(0))
    assert bool(rollout.truncated.any()) and bool(rollout.terminated.any())


test_torch_rollout_has_fixed_horizon = rollout_has_fixed_horizon(collect, _maker("torch"))
test_spec_rollout_has_fixed_horizon = rollout_has_fixed_horizon(collect, _maker("spec"))
test_gymnasium_rollout_has_fixed_horizon = rollout_has_fixed_horizon(
    collect, _maker("gymnasium")
)
test_torch_rollout_records_policy_outputs = rollout_records_policy_outputs(
    collect, _maker("torch")
)
test_spec_rollout_records_policy_outputs = rollout_records_policy_outputs(
    collect, _maker("spec")
)
test_torch_rollout_satisfies_contract = rollout_transitions_satisfy_contract(
    collect, _maker("torch")
)
test_spec_rollout_satisfies_contract = rollout_transitions_satisfy_contract(
    collect, _maker("spec")
)
test_gymnasium_rollout_satisfies_contract = rollout_transitions_satisfy_contract(
    collect, _maker("gymnasium")
)
test_torch_batch_matches_spec_gae = batch_matches_spec_gae(collect, _maker("torch"))
test_spec_batch_matches_spec_gae = batch_matches_spec_gae(collect, _maker("spec"))
test_gymnasium_batch_matches_spec_gae = batch_matches_spec_gae(collect, _maker("gymnasium"))

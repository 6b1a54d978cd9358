"""The edges of the runtime core that the properties' random draws do not reach on their own:
returns over zero environments and their chunk sizes, sampling over `[T, N, A]` batches and
with impossible actions up to the fallback, and the clip fraction exactly on a clip bound."""

import inspect

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties.distributions import sample_draws_only_possible_actions
from checked_rl.properties.ppo import clip_fraction_matches_spec
from checked_rl.runtime import distributions, returns, scans
from checked_rl.runtime.ppo import loss
from checked_rl.spec import distributions as spec_distributions
from checked_rl.spec import ppo as spec_ppo

FIND_FAULT = settings(max_examples=300, database=None, phases=[Phase.generate])
"""Settings for running a property on a faulty implementation: long enough to find the fault."""

INF = float("inf")


def _rollout(shape: tuple[int, int], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(sum(shape))
    return dict(
        rewards=torch.randn(shape, generator=generator, dtype=dtype),
        values=torch.randn(shape, generator=generator, dtype=dtype),
        next_values=torch.randn(shape, generator=generator, dtype=dtype),
        terminated=torch.rand(shape, generator=generator) < 0.1,
        truncated=torch.rand(shape, generator=generator) < 0.1,
    )


def _without(rollout: dict[str, torch.Tensor], *names: str) -> dict[str, torch.Tensor]:
    return {key: value for key, value in rollout.items() if key not in names}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(5, 0), (0, 3), (0, 0), (scans.CHUNK_ELEMENTS + 3, 0)])
def test_returns_of_zero_environments_or_steps_are_empty(
    shape: tuple[int, int], dtype: torch.dtype
) -> None:
    rollout = _rollout(shape, dtype)
    results = [
        returns.gae(**rollout, gamma=0.9, lam=0.8),
        returns.lambda_returns(**rollout, gamma=0.9, lam=0.8),
        returns.td_residuals(**_without(rollout, "truncated"), gamma=0.9),
        returns.discounted_returns(**_without(rollout, "values"), gamma=0.9),
    ]
    for result in results:
        assert result.shape == shape
        assert result.dtype == dtype


@pytest.mark.parametrize(
    ("n_steps", "num_envs"),
    [(1, 1), (7, 3), (64, 0), (3, scans.ROW_SCAN_MIN_ENVS), (300, scans.ROW_SCAN_MIN_ENVS)],
)
def test_returns_size_their_chunks_by_the_rollout(n_steps: int, num_envs: int) -> None:
    # Scratch buffers are as long as one chunk: cache-sized (or one piece for wide batches and
    # for discounted returns), never longer than the rollout, never empty.
    sizes: list[int] = []
    real = scans.scratch_buffers

    def spy(like: torch.Tensor, chunk: int) -> scans.Scratch:
        sizes.append(chunk)
        return real(like, chunk)

    rollout = _rollout((n_steps, num_envs), torch.float64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scans, "scratch_buffers", spy)
        returns.scanned_gae(**rollout, gamma=0.9, lam=0.8)
        returns.discounted_returns(**_without(rollout, "values"), gamma=0.9)
    piece = scans.steps_within(scans.PIECE_ELEMENTS, num_envs)
    assert sizes == [
        max(1, min(n_steps, scans.chunk_steps(num_envs))),
        max(1, min(n_steps, piece)),
    ]


def test_returns_of_many_chunks_over_zero_and_wide_batches_match_one_chunk() -> None:
    rollout = _rollout((40, scans.ROW_SCAN_MIN_ENVS), torch.float64)
    whole = returns.gae(**rollout, gamma=0.99, lam=0.95)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scans, "PIECE_ELEMENTS", 3 * scans.ROW_SCAN_MIN_ENVS)
        chunked = returns.gae(**rollout, gamma=0.99, lam=0.95)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("culprit", ["values", "next_values", "terminated"])
def test_returns_name_an_argument_on_another_device(culprit: str) -> None:
    # The meta device stands in for an accelerator: tensors with shapes and no data.
    rollout = _rollout((4, 2), torch.float64)
    rollout[culprit] = rollout[culprit].to("meta")
    with pytest.raises(ValueError, match=f"{culprit} must be on rewards's device cpu, got meta"):
        returns.gae(**rollout, gamma=0.9, lam=0.8)
    with pytest.raises(ValueError, match=f"{culprit} must be on rewards's device cpu, got meta"):
        returns.td_residuals(**_without(rollout, "truncated"), gamma=0.9)


def test_sample_on_a_rollout_of_logits_matches_the_spec_entry_by_entry() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn((4, 3, 5), generator=generator, dtype=torch.float64)
    logits[logits < -1.0] = -INF
    logits[..., 2] = 0.0  # every row keeps a possible action
    u = torch.rand((4, 3), generator=generator, dtype=torch.float64)
    got = distributions.sample(logits, u)
    assert got.shape == (4, 3)
    np.testing.assert_array_equal(
        got.numpy(), spec_distributions.sample(logits.numpy(), u.numpy())
    )
    for t in range(4):  # each row as a batch of its own
        np.testing.assert_array_equal(
            got[t].numpy(), spec_distributions.sample(logits[t].numpy(), u[t].numpy())
        )
    assert distributions.sample_actions(logits).shape == (4, 3)


def test_sample_rejects_u_of_another_batch_shape() -> None:
    with pytest.raises(TypeError, match="parameter 'u'"):
        distributions.sample(torch.zeros(4, 3, 2), torch.zeros(3, 4))
    # Its own check, for when the shape checks are off (JAXTYPING_DISABLE=1).
    unchecked = inspect.unwrap(distributions.sample)
    with pytest.raises(ValueError, match=r"u must have shape \(4, 3\)"):
        unchecked(torch.zeros(4, 3, 2), torch.zeros(3, 4))


def test_a_u_rounded_up_to_one_falls_back_to_the_last_possible_action() -> None:
    # float32 logits, a float64 u just below 1: cast to float32, u is 1 and no running sum
    # lies above u * W. The fallback is the last *possible* action, not the last action.
    logits = torch.tensor([[0.0, 0.0, -INF, -INF], [-INF, 0.0, 0.0, 0.0]])
    top = torch.full((2,), 1.0 - 2.0**-53, dtype=torch.float64)
    assert distributions.sample(logits, top).tolist() == [1, 3]
    assert distributions.sample(logits, torch.ones(2)).tolist() == [1, 3]
    assert distributions.sample(logits, torch.full((2,), float("nan"))).tolist() == [1, 3]


def test_a_u_on_a_boundary_goes_to_the_action_above_it() -> None:
    # Equal weights: u * W = W_a exactly at u = 1/2 (of 2 actions) and u = 1/4 (of 4).
    for n_actions, u, action in ((2, 0.5, 1), (4, 0.25, 1), (4, 0.75, 3), (4, 0.0, 0)):
        logits = torch.zeros((1, n_actions), dtype=torch.float64)
        assert distributions.sample(logits, torch.tensor([u], dtype=torch.float64)).tolist() == [
            action
        ]
        assert spec_distributions.sample(logits.numpy(), np.array([u])).tolist() == [action]


def test_the_fallback_on_a_rollout_of_logits_is_each_rows_last_possible_action() -> None:
    logits = torch.tensor(
        [[[0.0, 0.0, -INF], [0.0, -INF, -INF]], [[-INF, 0.0, 0.0], [0.0, -INF, 0.0]]]
    )
    assert distributions.sample(logits, torch.ones(2, 2)).tolist() == [[1, 0], [2, 2]]


def test_sample_never_draws_an_impossible_action_whatever_u() -> None:
    logits = torch.tensor([[-INF, 0.0, -INF, 0.0, -INF]] * 5, dtype=torch.float64)
    u = torch.tensor([-0.5, 0.0, 0.5, 1.0 - 2.0**-53, 2.0], dtype=torch.float64)
    assert distributions.sample(logits, u).tolist() == [1, 1, 3, 3, 3]


def test_spec_sample_at_the_top_of_the_interval_and_on_boundaries() -> None:
    # pi = [1/2, 0, 1/2, 0]: u = 1/2 is the boundary of actions 0 and 2 (the impossible action
    # 1 between them has an empty interval); the largest u below 1 draws 2, never 3.
    logits = np.array([[0.0, -np.inf, 0.0, -np.inf]] * 3)
    u = np.array([0.5, np.nextafter(0.5, 0.0), np.nextafter(1.0, 0.0)])
    np.testing.assert_array_equal(spec_distributions.sample(logits, u), [2, 0, 2])
    with pytest.raises(ValueError, match=r"u must lie in \[0, 1\)"):
        spec_distributions.sample(logits[:1], np.array([1.0]))


test_runtime_sample_draws_only_possible_actions = sample_draws_only_possible_actions(
    distributions.sample
)
test_runtime_sample_draws_only_possible_actions_float32 = sample_draws_only_possible_actions(
    distributions.sample, dtype=torch.float32
)


def _spec_sampler(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(spec_distributions.sample(logits.numpy(), u.numpy()))


test_spec_sample_draws_only_possible_actions = sample_draws_only_possible_actions(_spec_sampler)


def test_the_possible_actions_property_catches_boundaries_sent_to_the_action_below() -> None:
    # `u * W <= W_a` instead of `<`: a `u` on a boundary goes to the action below it, which
    # may be an impossible action (its interval is empty), e.g. action 0 at u = 0.
    def boundary_below(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))
        running = torch.cumsum(weights, dim=-1)
        below = (running < (u * running[..., -1]).unsqueeze(-1)).sum(dim=-1)
        return below.clamp(max=logits.shape[-1] - 1)

    with pytest.raises(AssertionError, match="impossible actions drawn"):
        FIND_FAULT(sample_draws_only_possible_actions(boundary_below))()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_ratio_exactly_on_a_clip_bound_is_not_clipped(dtype: torch.dtype) -> None:
    # log 1.5 and log 0.75 give ratios of exactly 1.5 and 0.75 here: |r - 1| = 0.5 and 0.25.
    new = np.log([1.5, 0.75, 1.0])
    assert np.exp(new).tolist() == [1.5, 0.75, 1.0]
    for clip_coef, clipped in ((0.5, 0.0), (0.25, 1 / 3), (0.0, 2 / 3)):
        assert spec_ppo.clip_fraction(new, np.zeros(3), clip_coef=clip_coef) == clipped
    # In the runtime, at ratio 1 (equal log-probabilities) on both bounds of eps = 0.
    same = torch.tensor([-0.5, -1.5], dtype=dtype)
    assert float(loss.clip_fraction(same, same, clip_coef=0.0)) == 0.0
    moved = torch.tensor([-0.5, -1.0], dtype=dtype)
    assert float(loss.clip_fraction(moved, same, clip_coef=0.0)) == 0.5
    ratio = torch.exp(torch.tensor([0.4, -0.3], dtype=dtype))
    log_ratio = torch.log(ratio)
    assert torch.equal(torch.exp(log_ratio), ratio)
    zeros = torch.zeros(2, dtype=dtype)
    for eps, clipped in ((float(ratio[0]) - 1.0, 0.0), (1.0 - float(ratio[1]), 0.5)):
        assert float(loss.clip_fraction(log_ratio, zeros, clip_coef=eps)) == clipped


test_runtime_clip_fraction_matches_spec = clip_fraction_matches_spec(loss.clip_fraction)
test_runtime_clip_fraction_matches_spec_float32 = clip_fraction_matches_spec(
    loss.clip_fraction, dtype=torch.float32
)


def test_the_clip_fraction_property_catches_a_count_that_includes_the_bounds() -> None:
    def closed_count(new: torch.Tensor, old: torch.Tensor, *, clip_coef: float) -> torch.Tensor:
        return ((torch.exp(new - old) - 1.0).abs() >= clip_coef).double().mean()

    with pytest.raises(AssertionError, match="clip_fraction"):
        FIND_FAULT(clip_fraction_matches_spec(closed_count))()


def test_the_clip_fraction_property_reaches_a_nonzero_bound_in_float64() -> None:
    reached = []

    def recording(new: torch.Tensor, old: torch.Tensor, *, clip_coef: float) -> torch.Tensor:
        ratio = torch.exp(new - old)
        reached.append(clip_coef > 0 and bool(((ratio - 1.0).abs() == clip_coef).any()))
        return loss.clip_fraction(new, old, clip_coef=clip_coef)

    FIND_FAULT(clip_fraction_matches_spec(recording))()
    assert any(reached)

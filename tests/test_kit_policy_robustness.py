"""Policy math on extreme logits, and inputs left alone: naive and in-place implementations
fail, `runtime.distributions` and `runtime.returns` pass."""

import inspect

import pytest
import torch
from hypothesis import settings

from checked_rl.properties.policy_robustness import (
    entropy_is_robust,
    leaves_inputs_unchanged,
    log_softmax_is_robust,
    logits_arguments,
    rollout_arguments,
)
from checked_rl.runtime import distributions, returns

FAST = settings(max_examples=40, deadline=None, database=None)
DTYPES = [torch.float32, torch.float64]


def naive_log_softmax(z: torch.Tensor) -> torch.Tensor:
    return z - torch.log(torch.exp(z).sum(-1, keepdim=True))


def naive_entropy(z: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(z, -1)
    return -(p * torch.log(p)).sum(-1)


def in_place_log_softmax(z: torch.Tensor) -> torch.Tensor:
    z -= z.max(-1, keepdim=True).values
    return z - torch.log(torch.exp(z).sum(-1, keepdim=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_on_extreme_logits(dtype: torch.dtype) -> None:
    FAST(log_softmax_is_robust(distributions.log_softmax, dtype=dtype))()
    FAST(log_softmax_is_robust(in_place_log_softmax, dtype=dtype))()  # right values
    with pytest.raises(AssertionError, match="not finite"):
        FAST(log_softmax_is_robust(naive_log_softmax, dtype=dtype))()


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_on_extreme_logits(dtype: torch.dtype) -> None:
    FAST(entropy_is_robust(distributions.entropy, dtype=dtype))()
    with pytest.raises(AssertionError, match="not finite"):
        FAST(entropy_is_robust(naive_entropy, dtype=dtype))()


@pytest.mark.parametrize(
    "fn", [distributions.log_softmax, distributions.softmax, distributions.entropy,
           distributions.greedy], ids=lambda fn: fn.__name__,
)
def test_policy_functions_leave_their_logits_unchanged(fn) -> None:
    FAST(leaves_inputs_unchanged(fn, logits_arguments()))()


def test_an_in_place_implementation_is_caught() -> None:
    with pytest.raises(AssertionError, match="argument 0 was modified in place"):
        FAST(leaves_inputs_unchanged(in_place_log_softmax, logits_arguments()))()


def test_gae_leaves_its_arguments_unchanged() -> None:
    FAST(leaves_inputs_unchanged(
        lambda rewards, values, next_values, terminated, truncated: returns.gae(
            rewards=rewards, values=values, next_values=next_values, terminated=terminated,
            truncated=truncated, gamma=0.99, lam=0.95,
        ),
        rollout_arguments(),
    ))()


def test_log_prob_and_sample_leave_their_arguments_unchanged() -> None:
    def with_actions(logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rows = logits.shape[0]
        u = torch.full((rows,), 0.5, dtype=logits.dtype)
        return logits, torch.zeros(rows, dtype=torch.int64), u

    arguments = logits_arguments().map(lambda args: with_actions(*args))
    FAST(leaves_inputs_unchanged(lambda z, a, u: distributions.log_prob(z, a), arguments))()
    FAST(leaves_inputs_unchanged(lambda z, a, u: distributions.sample(z, u), arguments))()


@pytest.mark.parametrize(
    "name", ["td_residuals", "lambda_returns", "discounted_returns", "normalize_advantages"]
)
def test_every_returns_function_leaves_its_arguments_unchanged(name: str) -> None:
    fn = getattr(returns, name)
    accepted = inspect.signature(fn).parameters
    fields = ("rewards", "values", "next_values", "terminated", "truncated")

    def call(*args: torch.Tensor) -> torch.Tensor:
        if name == "normalize_advantages":
            return fn(args[0])
        kwargs = {f: a for f, a in zip(fields, args, strict=True) if f in accepted}
        scalars = {k: v for k, v in {"gamma": 0.9, "lam": 0.8}.items() if k in accepted}
        return fn(**kwargs, **scalars)

    FAST(leaves_inputs_unchanged(call, rollout_arguments()))()

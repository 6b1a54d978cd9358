"""Batched categorical policies over discrete actions: logits `[..., A]`, any device.

The torch twins of `spec.distributions` (see there for the definitions): every function works
along the last axis of `logits`, whose leading axes `*batch` are any batch shape (`[N]`,
`[T, N]`, a minibatch). Logits are finite, or `-inf` for an impossible action. Everything is
differentiable where the spec is smooth, so the PPO loss can backpropagate through it.
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor

from checked_rl.runtime.shapes import typechecked

__all__ = [
    "Actions",
    "Logits",
    "PerSample",
    "entropy",
    "greedy",
    "log_prob",
    "log_softmax",
    "sample",
    "sample_actions",
    "softmax",
]

Logits = Float[Tensor, "*batch A"]
Actions = Int[Tensor, "*batch"]
PerSample = Float[Tensor, "*batch"]


def _check_actions(actions: Tensor, n_actions: int) -> None:
    """Raise a ValueError unless every action lies in `[0, n_actions)`."""
    if actions.numel() and bool((actions.min() < 0) | (actions.max() >= n_actions)):
        raise ValueError(
            f"actions must lie in [0, {n_actions}) (the last axis of logits), got values in "
            f"[{int(actions.min())}, {int(actions.max())}]"
        )


@typechecked
def log_softmax(logits: Logits) -> Logits:
    """The log-probabilities `z_a - logsumexp(z)`; twin of `spec.distributions.log_softmax`."""
    return torch.log_softmax(logits, dim=-1)


@typechecked
def softmax(logits: Logits) -> Logits:
    """The probabilities `exp(z_a) / sum_b exp(z_b)`; twin of `spec.distributions.softmax`."""
    return torch.softmax(logits, dim=-1)


@typechecked
def log_prob(logits: Logits, actions: Actions) -> PerSample:
    """`log pi(a)` of the given actions `[*batch]`; twin of `spec.distributions.log_prob`."""
    _check_actions(actions, logits.shape[-1])
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


@typechecked
def entropy(logits: Logits) -> PerSample:
    """`-sum_a pi(a) log pi(a)` with `0 log 0 = 0`; twin of `spec.distributions.entropy`.

    The `-inf` log-probabilities of impossible actions are clamped to the most negative finite
    number before the product, so `0 * log 0` is 0 and its gradient is 0, never NaN.
    """
    logp = torch.log_softmax(logits, dim=-1)
    finite_logp = logp.clamp(min=torch.finfo(logp.dtype).min)
    return -(logp.exp() * finite_logp).sum(dim=-1)


@typechecked
def greedy(logits: Logits) -> Actions:
    """The most probable action, the smallest index on ties; twin of `spec.distributions.greedy`.

    (`torch.argmax` returns the first maximal index.)
    """
    return torch.argmax(logits, dim=-1)


@typechecked
def sample(logits: Logits, u: PerSample) -> Actions:
    """Actions by the inverse CDF at uniform `u` in `[0, 1)`; twin of `spec.distributions.sample`.

    With weights `w = exp(z - max z)`, running sums `W` and total `W_{A-1}`: the smallest `a`
    with `w_a > 0` and `u * W_{A-1} < W_a`. `u` is cast to the logits' dtype first; should
    there be no such `a` (a `u` that rounds to 1 there, such as a float64 `u` just below 1
    with float32 logits, or a `u` of 1 or more, or NaN), the last possible action. Whatever
    `u`, the action is a possible one: never an action whose logit is `-inf`.
    """
    if u.shape != logits.shape[:-1]:
        raise ValueError(
            f"u must have shape {tuple(logits.shape[:-1])} (logits' batch shape), "
            f"got {tuple(u.shape)}"
        )
    weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))
    possible = weights > 0
    running = torch.cumsum(weights, dim=-1)
    threshold = (u.to(weights.dtype) * running[..., -1]).unsqueeze(-1)
    above = (running > threshold) & possible
    # argmax of 0/1 bytes: the first index of a maximum, so the first action above u.
    first = torch.argmax(above.to(torch.uint8), dim=-1)
    n_actions = logits.shape[-1]
    last_possible = n_actions - 1 - torch.argmax(possible.flip(-1).to(torch.uint8), dim=-1)
    return torch.where(above.any(dim=-1), first, last_possible)


@typechecked
def sample_actions(logits: Logits, generator: torch.Generator | None = None) -> Actions:
    """Draw one action per distribution: `sample(logits, u)` with `u ~ Uniform[0, 1)`.

    `u` is drawn by `torch.rand` on `logits`' device with `generator` (a seeded
    `torch.Generator` on that device makes the draws reproducible).
    """
    u = torch.rand(
        logits.shape[:-1], generator=generator, device=logits.device, dtype=logits.dtype
    )
    return sample(logits, u)

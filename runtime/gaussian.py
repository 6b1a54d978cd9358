"""Batched diagonal Gaussian policies over continuous actions: means `[..., A]`, any device.

The torch twins of `spec.gaussian` (see there for the formulas): `mean` has the full shape
`[*batch, A]`, and `log_std` any shape that broadcasts to it without enlarging it, in
particular `[A]`, the state-independent log-std of a policy head (one `nn.Parameter` shared by
the batch, whose gradient then sums over the batch); a `log_std` that does not is refused with
a ValueError that names it. Actions, normals `z` and a second mean have exactly the mean's shape
(`Mean`: the shape checks of `runtime.shapes` bind `*batch` and `A` once per call, and refuse
any other shape with a TypeCheckError naming the argument). Everything is computed in the
inputs' dtype (float32 or float64) on their device, and is differentiable in `mean` and
`log_std`, so the PPO loss can backpropagate through it; `properties.gaussian` checks the
values and the gradients against the spec.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor

from checked_rl.runtime.shapes import typechecked

__all__ = [
    "HALF_LOG_2PI",
    "LogStd",
    "Mean",
    "PerSample",
    "entropy",
    "kl_divergence",
    "log_prob",
    "mode",
    "sample",
    "sample_actions",
]

Mean = Float[Tensor, "*batch A"]
LogStd = Float[Tensor, "*#std_batch A"]
PerSample = Float[Tensor, "*batch"]

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
"""`0.5 * log(2 pi)`, the per-dimension constant of the log-density (as `spec.gaussian`)."""


def _check_log_std(mean: Tensor, log_std: Tensor, suffix: str = "") -> None:
    """Raise a ValueError unless `log_std` broadcasts to `mean`'s shape without enlarging it."""
    try:
        shape = torch.broadcast_shapes(mean.shape, log_std.shape)
    except RuntimeError:
        shape = None
    if shape != mean.shape:
        raise ValueError(
            f"log_std{suffix} of shape {tuple(log_std.shape)} must broadcast to mean{suffix}'s "
            f"shape {tuple(mean.shape)} (for example [A] or the mean's own shape)"
        )


@typechecked
def log_prob(mean: Mean, log_std: LogStd, actions: Mean) -> PerSample:
    """`sum_a (-0.5 * ((x_a - mu_a) * exp(-s_a))^2 - s_a - 0.5 * log(2 pi))`.

    Twin of `spec.gaussian.log_prob`; `actions` has the mean's shape.
    """
    _check_log_std(mean, log_std)
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - HALF_LOG_2PI).sum(dim=-1)


@typechecked
def entropy(mean: Mean, log_std: LogStd) -> PerSample:
    """`sum_a (s_a + 0.5 + 0.5 * log(2 pi))`, one per sample of the mean's batch shape.

    Twin of `spec.gaussian.entropy`: `mean` gives the batch shape only (no gradient flows to
    it); a `log_std [A]` is expanded to the batch before the sum, so every sample counts each
    dimension once.
    """
    _check_log_std(mean, log_std)
    return (log_std.expand(mean.shape) + (0.5 + HALF_LOG_2PI)).sum(dim=-1)


@typechecked
def sample(mean: Mean, log_std: LogStd, z: Mean) -> Mean:
    """`mu + exp(s) * z` for given standard normals `z` of the mean's shape.

    Twin of `spec.gaussian.sample` (the reparametrisation: differentiable in both parameters).
    """
    _check_log_std(mean, log_std)
    return mean + torch.exp(log_std) * z


@typechecked
def mode(mean: Mean, log_std: LogStd) -> Mean:
    """The most probable action, the mean; twin of `spec.gaussian.mode`.

    `log_std` is checked, not used. The result is the mean tensor itself (not a copy).
    """
    _check_log_std(mean, log_std)
    return mean


@typechecked
def kl_divergence(mean_p: Mean, log_std_p: LogStd, mean_q: Mean, log_std_q: LogStd) -> PerSample:
    """`KL(p || q)`, summed over the dimensions; twin of `spec.gaussian.kl_divergence`.

    With `d = s_p - s_q`: `sum_a (0.5 * (expm1(2 d) - 2 d) + 0.5 * ((mu_p - mu_q) * exp(-s_q))^2)`,
    accurate where `p` and `q` are close (as PPO's successive policies are).
    """
    _check_log_std(mean_p, log_std_p, "_p")
    _check_log_std(mean_q, log_std_q, "_q")
    d = (log_std_p - log_std_q).expand(mean_p.shape)
    distance = (mean_p - mean_q) * torch.exp(-log_std_q)
    return (0.5 * (torch.expm1(2.0 * d) - 2.0 * d) + 0.5 * distance * distance).sum(dim=-1)


@typechecked
def sample_actions(mean: Mean, log_std: LogStd, generator: torch.Generator | None = None) -> Mean:
    """Draw one action per distribution: `sample(mean, log_std, z)` with `z ~ N(0, 1)`.

    `z` is drawn by `torch.randn` on the mean's device and dtype with `generator` (a seeded
    `torch.Generator` on that device makes the draws reproducible).
    """
    z = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return sample(mean, log_std, z)

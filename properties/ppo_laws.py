"""Laws of the spec's PPO loss terms (Schulman et al. 2017): the clipped objective is a
pessimistic bound, the KL estimate is never negative, clipping the value loss never lowers it.

Each property takes a NumPy implementation with `spec.ppo`'s signature (the spec's own, or a
user's) and checks it on `ppo_minibatches`, within `LAW_TOL` of the batch's scale.
"""

from collections.abc import Callable

import numpy as np
from hypothesis import given

from checked_rl.properties.strategies.rollouts import PPOMinibatch, ppo_minibatches
from checked_rl.properties.tolerances import LAW_TOL
from checked_rl.spec.distributions import log_prob

__all__ = [
    "approx_kl_is_nonnegative",
    "clipped_surrogate_is_pessimistic",
    "clipped_value_loss_bounds_unclipped",
]


def clipped_surrogate_is_pessimistic(
    policy_loss: Callable[..., float],
) -> Callable[[], None]:
    """The clipped loss is at least the unclipped one, `-mean(r A)` (Schulman et al. 2017,
    section 3: a lower bound on the objective), and equals `-mean(A)` when every `r = 1`.

    Assumes `ppo_minibatches`; accepts any NumPy `policy_loss` with the spec's signature.
    """

    @given(batch=ppo_minibatches())
    def prop(batch: PPOMinibatch) -> None:
        new = log_prob(batch.logits, batch.actions)
        loss = policy_loss(new, batch.old_log_probs, batch.advantages, clip_coef=batch.clip_coef)
        unclipped = -np.mean(np.exp(new - batch.old_log_probs) * batch.advantages)
        scale = 10.0 * np.abs(batch.advantages).mean()
        assert loss >= unclipped - LAW_TOL * scale, f"{loss} below the unclipped {unclipped}"
        at_one = policy_loss(new, new, batch.advantages, clip_coef=batch.clip_coef)
        assert abs(at_one + np.mean(batch.advantages)) <= LAW_TOL * scale

    return prop


def approx_kl_is_nonnegative(approx_kl: Callable[..., float]) -> Callable[[], None]:
    """The `k3` estimate `mean((r - 1) - log r)` is never negative, and 0 when every `r = 1`.

    Assumes `ppo_minibatches`; accepts any NumPy `approx_kl` with the spec's signature.
    """

    @given(batch=ppo_minibatches())
    def prop(batch: PPOMinibatch) -> None:
        new = log_prob(batch.logits, batch.actions)
        assert approx_kl(new, batch.old_log_probs) >= 0.0
        assert approx_kl(new, new) == 0.0

    return prop


def clipped_value_loss_bounds_unclipped(value_loss: Callable[..., float]) -> Callable[[], None]:
    """Clipping the value loss (a maximum of two squared errors) never lowers it, and changes
    nothing when every value stays within `eps` of its old value.

    Assumes `ppo_minibatches`; accepts any NumPy `value_loss` with the spec's signature.
    """

    @given(batch=ppo_minibatches())
    def prop(batch: PPOMinibatch) -> None:
        eps = 0.5 if batch.value_clip_coef is None else batch.value_clip_coef
        plain = value_loss(batch.values, batch.returns)
        clipped = value_loss(
            batch.values, batch.returns, old_values=batch.old_values, clip_coef=eps
        )
        assert clipped >= plain
        near = batch.values - np.clip(batch.values - batch.old_values, -eps, eps)
        unchanged = value_loss(batch.values, batch.returns, old_values=near, clip_coef=eps)
        scale = np.mean((np.abs(batch.values) + np.abs(batch.returns) + eps) ** 2)
        assert abs(unchanged - plain) <= LAW_TOL * scale, f"{unchanged} != {plain}"

    return prop

"""Rollout collection: `T` steps of a policy in any checked session.

The loop only uses the `CheckedSession` protocol (`observe`, `step_checked`, `num_envs`,
`device`), so it runs unchanged over spec, torch, in-process Gymnasium and subprocess Gymnasium
sessions. Every transition has passed the session's contract before it is stored.
"""

import torch
from torch import Tensor

from checked_rl.runtime import distributions
from checked_rl.runtime.ppo.model import Policy
from checked_rl.runtime.ppo.rollout import Rollout
from checked_rl.runtime.sessions.base import CheckedSession

__all__ = ["collect"]


def collect(
    session: CheckedSession,
    policy: Policy,
    horizon: int,
    *,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Step `session` `horizon` times with actions sampled from `policy`; return the `Rollout`.

    Args:
        session: a checked session (see `runtime.sessions`), already reset.
        policy: observations `[N, *obs]` -> (logits `[N, A]`, values `[N]`).
        horizon: T, the steps taken in every environment.
        generator: the random source of the action samples (the global one when None); the
            uniforms of all `horizon` steps are drawn from it at once, on the session's device.

    The log-probabilities of the taken actions and the values of the true next observations
    are computed after the loop, in one batched call each, from the same policy: collection
    does not change the policy, so they equal the per-step numbers. Runs without autograd.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"collect: horizon must be a positive integer, got {horizon!r}")
    observations: list[Tensor] = []
    actions: list[Tensor] = []
    logits: list[Tensor] = []
    values: list[Tensor] = []
    rewards: list[Tensor] = []
    terminated: list[Tensor] = []
    truncated: list[Tensor] = []
    next_observations: list[Tensor] = []
    with torch.no_grad():
        observation = session.observe()
        uniforms = torch.rand(horizon, session.num_envs, generator=generator,
                              device=observation.device)
        for t in range(horizon):
            step_logits, step_values = policy(observation)
            step_actions = distributions.sample(step_logits, uniforms[t].to(step_logits.dtype))
            transition = session.step_checked(step_actions)
            observations.append(observation)
            actions.append(step_actions)
            logits.append(step_logits)
            values.append(step_values)
            rewards.append(transition.reward)
            terminated.append(transition.terminated)
            truncated.append(transition.truncated)
            next_observations.append(transition.next_observation)
            observation = session.observe()
        stacked_next = torch.stack(next_observations)
        stacked_actions = torch.stack(actions)
        stacked_logits = torch.stack(logits)
        flat = horizon * session.num_envs
        log_probs = distributions.log_prob(
            stacked_logits.reshape(flat, -1), stacked_actions.reshape(flat)
        ).reshape(horizon, -1)
        _, next_values = policy(stacked_next.reshape(flat, *stacked_next.shape[2:]))
    return Rollout(
        observations=torch.stack(observations),
        actions=stacked_actions,
        log_probs=log_probs,
        rewards=torch.stack(rewards),
        terminated=torch.stack(terminated),
        truncated=torch.stack(truncated),
        values=torch.stack(values),
        next_values=next_values.reshape(horizon, -1),
        next_observations=stacked_next,
    )

"""Rollout collection: `T` steps of a policy in any checked session.

The loop only uses the `CheckedSession` protocol (`observe`, `step_checked`, `num_envs`,
`device`), so it runs unchanged over spec, torch, in-process Gymnasium and subprocess Gymnasium
sessions. Every transition has passed the session's contract before it is stored.

The policy's head (`runtime.ppo.heads`: categorical for discrete actions, Gaussian for `Box`
ones) samples the actions; a Gaussian's are stored as sampled, unclipped (the session clips
what the environment receives), so the stored log-probabilities are those of the stored actions.
"""

import torch
from torch import Tensor

from checked_rl.runtime.contract import torch_dtype
from checked_rl.runtime.ppo.heads import CategoricalHead, PolicyHead
from checked_rl.runtime.ppo.model import Policy
from checked_rl.runtime.ppo.rollout import Rollout
from checked_rl.runtime.sessions.base import CheckedSession

__all__ = ["collect", "head_of", "session_actions"]


def head_of(policy: Policy, head: PolicyHead | None = None) -> PolicyHead:
    """`head`, else the policy's own `head` attribute (an `ActorCritic`'s), else categorical
    (a plain function returning logits)."""
    if head is None:
        head = getattr(policy, "head", None)
    return CategoricalHead() if head is None else head


def session_actions(actions: Tensor, session: CheckedSession) -> Tensor:
    """`actions` in the dtype of the session's action box (discrete ones unchanged)."""
    box = session.action_box
    return actions if box is None else actions.to(torch_dtype(box.dtype))


def collect(
    session: CheckedSession,
    policy: Policy,
    horizon: int,
    *,
    generator: torch.Generator | None = None,
    head: PolicyHead | None = None,
) -> Rollout:
    """Step `session` `horizon` times with actions sampled from `policy`; return the `Rollout`.

    Args:
        session: a checked session (see `runtime.sessions`), already reset.
        policy: observations `[N, *obs]` -> (logits or Gaussian means `[N, A]`, values `[N]`).
        horizon: T, the steps taken in every environment.
        generator: the random source of the action samples (the global one when None); the
            noise of all `horizon` steps (uniforms, or standard normals for a Gaussian) is
            drawn from it at once, on the session's device.
        head: the policy's distribution (`head_of`: by default the policy's own `head`, else
            categorical).

    The log-probabilities of the taken actions and the values of the true next observations
    are computed after the loop, in one batched call each, from the same policy: collection
    does not change the policy, so they equal the per-step numbers. Runs without autograd.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"collect: horizon must be a positive integer, got {horizon!r}")
    head = head_of(policy, head)
    observations: list[Tensor] = []
    actions: list[Tensor] = []
    outputs: list[Tensor] = []
    values: list[Tensor] = []
    rewards: list[Tensor] = []
    terminated: list[Tensor] = []
    truncated: list[Tensor] = []
    next_observations: list[Tensor] = []
    with torch.no_grad():
        observation = session.observe()
        noise = head.noise(horizon, session.num_envs, generator, observation.device)
        for t in range(horizon):
            step_outputs, step_values = policy(observation)
            step_actions = session_actions(head.sample(step_outputs, noise[t]), session)
            transition = session.step_checked(step_actions)
            observations.append(observation)
            actions.append(step_actions)
            outputs.append(step_outputs)
            values.append(step_values)
            rewards.append(transition.reward)
            terminated.append(transition.terminated)
            truncated.append(transition.truncated)
            next_observations.append(transition.next_observation)
            observation = session.observe()
        stacked_next = torch.stack(next_observations)
        stacked_actions = torch.stack(actions)
        stacked_outputs = torch.stack(outputs)
        flat = horizon * session.num_envs
        log_probs = head.log_prob(
            stacked_outputs.reshape(flat, -1),
            stacked_actions.reshape(flat, *stacked_actions.shape[2:]),
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

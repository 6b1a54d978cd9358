"""Greedy evaluation: one episode per environment of a session, on held-out seeds.

An evaluation session of `E` environments is reset with seed `s`, so episode `j` starts from
seed `s + j`; each environment counts its first episode only (sessions auto-reset, and the
later episodes are ignored). Episodes longer than `max_episode_steps` are cut there. The
greedy action is the head's (`runtime.ppo.heads`): the argmax of the logits, or a Gaussian's
mean (its mode), which the session clips to the box as for any action.
"""

import torch
from torch import Tensor

from checked_rl.runtime.ppo.collect import head_of, session_actions
from checked_rl.runtime.ppo.heads import PolicyHead
from checked_rl.runtime.ppo.model import Policy
from checked_rl.runtime.sessions.base import CheckedSession

__all__ = ["ANY_ACTIVE_CHECK_EVERY", "evaluate", "evaluate_episodes"]

ANY_ACTIVE_CHECK_EVERY = 16
"""Steps between checks whether every episode has ended (each check waits for the device)."""


def evaluate(
    session: CheckedSession, policy: Policy, *, seed: int, max_episode_steps: int,
    head: PolicyHead | None = None,
) -> Tensor:
    """Returns `[E]` of the greedy policy's first episode in each of the session's environments.

    Args:
        session: a checked session with `E = session.num_envs` environments.
        policy: observations -> (logits or Gaussian means, values); the action is the head's
            greedy one.
        seed: the session is reset with it, so environment j starts from seed + j.
        max_episode_steps: the most steps an episode may take before it is cut.
        head: the policy's distribution (`collect.head_of`: by default the policy's own).
    """
    return evaluate_episodes(session, policy, seed=seed, max_episode_steps=max_episode_steps,
                             head=head)[0]


def evaluate_episodes(
    session: CheckedSession, policy: Policy, *, seed: int, max_episode_steps: int,
    head: PolicyHead | None = None,
) -> tuple[Tensor, Tensor]:
    """`evaluate`'s returns `[E]` and the lengths `[E]` (int64) of the same episodes."""
    if (isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1):
        raise ValueError(
            f"evaluate: max_episode_steps must be a positive integer, got {max_episode_steps!r}"
        )
    head = head_of(policy, head)
    session.reset(seed=seed)
    totals = torch.zeros(session.num_envs, dtype=torch.float64, device=session.device)
    lengths = torch.zeros(session.num_envs, dtype=torch.int64, device=session.device)
    active = torch.ones(session.num_envs, dtype=torch.bool, device=session.device)
    with torch.no_grad():
        for step in range(max_episode_steps):
            outputs, _ = policy(session.observe())
            transition = session.step_checked(session_actions(head.greedy(outputs), session))
            totals += torch.where(active, transition.reward.to(totals.dtype), 0.0)
            lengths += active.to(lengths.dtype)
            active &= ~(transition.terminated | transition.truncated)
            if (step + 1) % ANY_ACTIVE_CHECK_EVERY == 0 and not bool(active.any()):
                break
    return totals, lengths

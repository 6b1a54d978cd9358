"""The fast path of the contract check: a batch's extremes against a contract's float64 limits.

`runtime.contract.check_transition` decides most batches here, with a handful of reductions and
one host synchronisation: a batch is valid when its extremes (per observation entry, of the
rewards and of the actions) lie within the contract's value rules, taken as closed float64
intervals, and no environment has both flags set. Only a rejected batch goes on to the
reference predicate for the detailed report.
"""

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from checked_rl.runtime.contract.records import Transition, to_numpy
from checked_rl.spec import contract as spec_contract

__all__ = ["Limits", "contract_limits", "values_valid"]

_FLOAT64_MAX = float(np.finfo(np.float64).max)


@dataclass(frozen=True, eq=False)
class Limits:
    """A contract's value rules as closed float64 intervals, for the fast check.

    With a finiteness rule, infinite bounds become +-float64 max, so that infinities fail them;
    NaN fails every comparison. A part without any rule is None and not compared (a NaN there
    is valid).
    """

    size: int  # entries of one observation
    observation: tuple[np.ndarray, np.ndarray] | None  # per-entry (low, high), flattened
    reward: tuple[float, float] | None


@functools.lru_cache(maxsize=64)
def contract_limits(contract: spec_contract.Contract) -> Limits:
    """The float64 intervals of `contract`, cached per contract."""
    size = int(np.prod(contract.observation_shape))
    observation = None
    low, high = contract.observation_low, contract.observation_high
    if contract.finite_observations or low is not None or high is not None:
        finite = _FLOAT64_MAX if contract.finite_observations else np.inf
        low = np.full(size, -np.inf) if low is None else low.reshape(size)
        high = np.full(size, np.inf) if high is None else high.reshape(size)
        observation = (np.maximum(low, -finite), np.minimum(high, finite))
    reward = None
    if contract.finite_rewards or contract.reward_range is not None:
        finite = _FLOAT64_MAX if contract.finite_rewards else np.inf
        reward_low, reward_high = contract.reward_range or (-np.inf, np.inf)
        reward = (max(reward_low, -finite), min(reward_high, finite))
    return Limits(size, observation, reward)


class _Extremes(NamedTuple):
    """What the fast check needs of a batch, on the host.

    Attributes:
        observation: per-entry (minimum, maximum) over both observation fields, flattened
            (NaN where any value is NaN), or None when observations are unconstrained.
        reward: (minimum, maximum) of the rewards, or None when they are unconstrained.
        action: (minimum, maximum) of the actions (floats for continuous actions, whose only
            value rule is finiteness: NaN where any is NaN).
        both_flags: whether some environment has `terminated` and `truncated` both True.
    """

    observation: tuple[np.ndarray, np.ndarray] | None
    reward: tuple[float, float] | None
    action: tuple[int, int] | tuple[float, float]
    both_flags: bool


def values_valid(contract: spec_contract.Contract, transition: Transition) -> bool:
    """The fast check of every value rule: the batch's extremes against the limits.

    A valid batch is one whose extremes lie within the contract's limits, so a few reductions
    decide, compared exactly in float64 on the host (every float16/32 value is a float64 value).
    """
    if transition.num_envs == 0:
        return True
    limits = contract_limits(contract)
    if transition.device.type == "cpu":
        extremes = _host_extremes(contract, limits, transition)
    else:
        extremes = _device_extremes(contract, limits, transition)
    if extremes.both_flags:
        return False
    if contract.action_box is not None:
        if not (np.isfinite(extremes.action[0]) and np.isfinite(extremes.action[1])):
            return False
    elif not (extremes.action[0] >= 0 and extremes.action[1] < contract.n_actions):
        return False
    if extremes.reward is not None:
        assert limits.reward is not None
        (low, high), (minimum, maximum) = limits.reward, extremes.reward
        if not (low <= minimum and maximum <= high):
            return False
    if extremes.observation is not None:
        assert limits.observation is not None
        (low, high), (minimum, maximum) = limits.observation, extremes.observation
        return bool(((minimum >= low) & (maximum <= high)).all())
    return True


def _host_extremes(
    contract: spec_contract.Contract, limits: Limits, transition: Transition
) -> _Extremes:
    """`_Extremes` of a CPU batch, by NumPy reductions on views of the tensors, which are
    faster there than `torch.aminmax` (the guide to performance has the measurement)."""
    observation = None
    if limits.observation is not None:
        first, second = (
            to_numpy(o).reshape(len(o), limits.size)
            for o in (transition.observation, transition.next_observation)
        )
        observation = (
            np.minimum(first.min(0), second.min(0)),
            np.maximum(first.max(0), second.max(0)),
        )
    reward = None
    if limits.reward is not None:
        rewards = to_numpy(transition.reward)
        reward = (float(rewards.min()), float(rewards.max()))
    actions = to_numpy(transition.action)
    number = float if transition.action.is_floating_point() else int
    action = (number(actions.min()), number(actions.max()))
    both_flags = contract.exclusive_flags and bool(
        (to_numpy(transition.terminated) & to_numpy(transition.truncated)).any()
    )
    return _Extremes(observation, reward, action, both_flags)


_EXACT_INTEGER = 2**53
"""Integers up to this magnitude are exact in float64."""


def _device_extremes(
    contract: spec_contract.Contract, limits: Limits, transition: Transition
) -> _Extremes:
    """`_Extremes` of a batch on an accelerator: reductions there, one float64 transfer.

    Action extremes are clamped to +-2**53 before the transfer, which keeps them exact or out
    of any action range.
    """
    parts = []
    if limits.observation is not None:
        first, second = (
            (o if o.is_floating_point() else o.double()).reshape(len(o), limits.size)
            for o in (transition.observation, transition.next_observation)
        )
        parts += [
            torch.minimum(first.amin(0), second.amin(0)),
            torch.maximum(first.amax(0), second.amax(0)),
        ]
    if limits.reward is not None:
        parts += [value.reshape(1) for value in torch.aminmax(transition.reward)]
    continuous = transition.action.is_floating_point()
    parts += [
        (value if continuous else value.clamp(-_EXACT_INTEGER, _EXACT_INTEGER)).reshape(1)
        for value in torch.aminmax(transition.action)
    ]
    parts.append((transition.terminated & transition.truncated).any().reshape(1))
    host = torch.cat([part.double() for part in parts]).cpu().numpy()
    sizes = np.cumsum([part.numel() for part in parts])[:-1]
    chunks = np.split(host, sizes)
    observation = (chunks[0], chunks[1]) if limits.observation is not None else None
    reward = None
    if limits.reward is not None:
        reward = (float(chunks[-5][0]), float(chunks[-4][0]))
    number = float if continuous else int
    action = (number(chunks[-3][0]), number(chunks[-2][0]))
    both_flags = contract.exclusive_flags and bool(chunks[-1][0])
    return _Extremes(observation, reward, action, both_flags)

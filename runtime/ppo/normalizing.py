"""PPO with running normalisation (`PPOConfig.normalize_observations`, `normalize_rewards`).

`NormalizingSession` wraps a checked session so that the learner sees what Stable-Baselines3's
`VecNormalize` would hand it: normalised observations (statistics updated with every reset
observation and every observation after a step, as `VecNormalize.reset` and `step_wait` do)
and rewards scaled by the running deviation of the discounted return (`runtime.normalization`).
The inner session checks its contract on the raw transitions first; the wrapper only maps them.
It keeps the raw rewards of the steps since the last `take_raw_rewards()`, so that the
episode returns in the metrics and the log stay those of the environment.

Evaluation wraps its session with the same observation statistics, frozen, and no reward
scaling (`evaluation_session`). A checkpoint stores the statistics under `normalization`
(`normalization_state`); `frozen_observations(checkpoint)` rebuilds the evaluation map for
`checked-rl eval` and `checked-rl export`. With both options off nothing is wrapped.
"""

import dataclasses
from types import TracebackType
from typing import Any, Self

import torch
from torch import Tensor, nn

from checked_rl.runtime.contract import Transition
from checked_rl.runtime.normalization import (
    FrozenObservationNormalizer,
    ObservationNormalizer,
    RewardScaler,
)
from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.rollout import Rollout
from checked_rl.spec.normalization import EPSILON

__all__ = [
    "NormalizedActor",
    "NormalizedPolicy",
    "NormalizingSession",
    "evaluation_session",
    "frozen_observations",
    "load_normalization",
    "normalization_state",
    "normalized_policy",
    "normalizing_session",
    "raw_rewards",
    "validate_normalization",
]


class NormalizingSession:
    """A checked session whose observations are normalised and whose rewards are scaled.

    Args:
        session: the checked session to wrap (closed with the wrapper).
        observations: the observation normaliser, or None to pass observations through.
        rewards: the reward scaler, or None to pass rewards through.
        update: whether the observation statistics take the observations seen (False for
            evaluation, which shares the training statistics).

    Every other attribute (`num_envs`, `device`, `observation_shape`, `n_actions`,
    `action_box`, `contract`, ...) is the wrapped session's.
    """

    def __init__(
        self,
        session: Any,
        observations: ObservationNormalizer | None,
        rewards: RewardScaler | None,
        *,
        update: bool = True,
    ) -> None:
        self.session = session
        self.observations = observations
        self.rewards = rewards
        self.update = update
        self.raw: list[Tensor] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "session":
            raise AttributeError(name)
        return getattr(self.session, name)

    def _map(self, observation: Tensor) -> Tensor:
        if self.observations is None:
            return observation
        return self.observations.normalize(observation).to(observation.device)

    def _learn(self, observation: Tensor) -> None:
        if self.observations is not None and self.update:
            self.observations.update(observation)

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset the wrapped session; every discounted return restarts at 0."""
        observation = self.session.reset(seed=seed)
        if self.rewards is not None:
            self.rewards.reset()
        self.raw.clear()
        self._learn(observation)
        return self._map(observation)

    def observe(self) -> Tensor:
        """The current observations, normalised under the current statistics."""
        return self._map(self.session.observe())

    def step_checked(self, actions: Tensor) -> Transition:
        """Step the wrapped session; the transition with mapped observations and reward.

        `observation` is mapped with the statistics it was observed under; the statistics
        then take the observations after the step (the reset ones where an episode ended),
        and `next_observation` is mapped with the updated statistics, as `observe()` will.
        """
        transition = self.session.step_checked(actions)
        observation = self._map(transition.observation)
        self._learn(self.session.observe())
        reward = transition.reward
        if self.rewards is not None:
            self.raw.append(reward)
            reward = self.rewards(reward, transition.terminated, transition.truncated)
        return Transition(
            observation=observation,
            action=transition.action,
            reward=reward,
            next_observation=self._map(transition.next_observation),
            terminated=transition.terminated,
            truncated=transition.truncated,
        )

    def take_raw_rewards(self) -> Tensor | None:
        """The raw rewards `[T, N]` of the steps since the last call (None without scaling)."""
        if self.rewards is None or not self.raw:
            return None
        stacked = torch.stack(self.raw)
        self.raw.clear()
        return stacked

    def state_dict(self) -> dict[str, Any]:
        """The wrapped session's state (the statistics are `normalization_state`'s)."""
        return self.session.state_dict()

    def load_state_dict(self, state: Any) -> None:
        """Restore the wrapped session's state."""
        self.session.load_state_dict(state)

    def close(self) -> None:
        """Close the wrapped session."""
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def normalizing_session(session: Any, config: PPOConfig) -> Any:
    """`session` wrapped as `config` asks, or `session` itself when both options are off."""
    if not (config.normalize_observations or config.normalize_rewards):
        return session
    observations = rewards = None
    if config.normalize_observations:
        observations = ObservationNormalizer(
            tuple(session.observation_shape), clip=config.clip_observations, device=session.device
        )
    if config.normalize_rewards:
        rewards = RewardScaler(session.num_envs, gamma=config.gamma, clip=config.clip_rewards,
                               device=session.device)
    return NormalizingSession(session, observations, rewards)


def evaluation_session(session: Any, training: Any) -> Any:
    """`session` with the observation statistics of the `training` session, frozen; raw
    rewards. `session` itself when training does not normalise observations."""
    if not isinstance(training, NormalizingSession) or training.observations is None:
        return session
    return NormalizingSession(session, training.observations, None, update=False)


def raw_rewards(session: Any, rollout: Rollout) -> Rollout:
    """`rollout` with the environment's own rewards, when `session` scaled them."""
    if not isinstance(session, NormalizingSession):
        return rollout
    raw = session.take_raw_rewards()
    if raw is None:
        return rollout
    if raw.shape != rollout.rewards.shape:
        raise ValueError(
            f"raw_rewards: the session scaled {list(raw.shape)} rewards since the last "
            f"rollout, the rollout holds {list(rollout.rewards.shape)}"
        )
    return dataclasses.replace(rollout, rewards=raw.to(rollout.rewards.dtype))


def normalization_state(session: Any) -> dict[str, Any] | None:
    """What a checkpoint saves under `normalization`: the statistics (tensors on the CPU), or
    None when `session` does not normalise."""
    if not isinstance(session, NormalizingSession):
        return None
    state: dict[str, Any] = {"observations": None, "rewards": None}
    if session.observations is not None:
        state["observations"] = _cpu(session.observations.state_dict())
    if session.rewards is not None:
        state["rewards"] = _cpu(session.rewards.state_dict())
    return state


def load_normalization(session: Any, state: Any) -> None:
    """Restore `normalization_state`'s output into a wrapped session (`ValueError` if the
    checkpoint lacks statistics the session needs)."""
    if not isinstance(session, NormalizingSession):
        return
    if not isinstance(state, dict):
        raise ValueError("the checkpoint holds no normalisation statistics")
    for name, part in (("observations", session.observations), ("rewards", session.rewards)):
        if part is not None:
            if not isinstance(state.get(name), dict):
                raise ValueError(f"the checkpoint holds no normalisation statistics of {name}")
            part.load_state_dict(state[name])


def validate_normalization(
    state: Any, config: PPOConfig, observation_shape: tuple[int, ...], num_envs: int
) -> None:
    """Raise `ValueError` unless `state` (a checkpoint's `normalization`) is what `config`
    needs: statistics of observations of `observation_shape` and of `num_envs` returns."""
    if not (config.normalize_observations or config.normalize_rewards):
        if state is not None:
            raise ValueError("normalization must be None when the config normalises nothing")
        return
    session = NormalizingSession(
        None,
        ObservationNormalizer(observation_shape) if config.normalize_observations else None,
        RewardScaler(num_envs, gamma=config.gamma) if config.normalize_rewards else None,
    )
    load_normalization(session, state)


def frozen_observations(checkpoint: dict[str, Any]) -> FrozenObservationNormalizer | None:
    """The frozen observation map of a validated checkpoint, or None when it has none."""
    config = PPOConfig.from_dict(checkpoint["config"])
    state = checkpoint.get("normalization")
    if not config.normalize_observations or not isinstance(state, dict):
        return None
    moments = state["observations"]
    return FrozenObservationNormalizer(
        moments["mean"], moments["var"], clip=config.clip_observations, epsilon=EPSILON
    )


class NormalizedActor(nn.Module):
    """`actor(normalizer(observation))`: an exported greedy actor that takes raw observations
    (TorchScript-compatible)."""

    def __init__(self, actor: nn.Module, normalizer: FrozenObservationNormalizer) -> None:
        super().__init__()
        self.actor = actor
        self.normalizer = normalizer

    def forward(self, observation: Tensor) -> Tensor:
        return self.actor(self.normalizer(observation))


class NormalizedPolicy(nn.Module):
    """`model(normalizer(observations))`: a `Policy` that takes raw observations, for
    `checked-rl eval` of a checkpoint trained on normalised ones."""

    def __init__(self, model: nn.Module, normalizer: FrozenObservationNormalizer) -> None:
        super().__init__()
        self.model = model
        self.normalizer = normalizer

    @property
    def head(self) -> Any:
        """The wrapped model's policy head: what `evaluate` steps greedily (a Gaussian's mean)."""
        return getattr(self.model, "head", None)

    def forward(self, observations: Tensor) -> Any:
        return self.model(self.normalizer(observations))


def normalized_policy(model: nn.Module, checkpoint: dict[str, Any]) -> nn.Module:
    """`model` behind the checkpoint's frozen observation map, or `model` when it has none."""
    normalizer = frozen_observations(checkpoint)
    return model if normalizer is None else NormalizedPolicy(model, normalizer)


def _cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {key: _cpu(value) if isinstance(value, dict)
            else value.detach().to("cpu", copy=True) if isinstance(value, Tensor) else value
            for key, value in state.items()}

"""`runtime.normalization` agrees with `spec.normalization` over drawn streams, on CPU (and
CUDA where there is one); the laws of the spec hold; each property catches a real bug."""

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties.normalization import (
    frozen_normalizer_is_a_fixed_affine_map,
    merge_is_the_moments_of_the_concatenation,
    normalized_values_lie_within_the_clip,
    observation_normalizer_matches_spec,
    reward_scaler_matches_spec,
    running_moments_match_spec,
    update_is_order_invariant,
)
from checked_rl.runtime.normalization import (
    ObservationNormalizer,
    RewardScaler,
    RunningMoments,
    normalize_observations,
)
from checked_rl.spec import normalization as spec

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FIND_FAULT = settings(max_examples=300, database=None, phases=[Phase.generate], deadline=None,
                      report_multiple_bugs=False)


def _moments(cls: type[RunningMoments], device: str) -> Any:
    return lambda shape: cls(shape, device=device)


def _observations(cls: type[ObservationNormalizer], device: str) -> Any:
    return lambda shape, clip, epsilon: cls(shape, clip=clip, epsilon=epsilon, device=device)


def _scaler(cls: type[RewardScaler], device: str) -> Any:
    return lambda n, gamma, clip, epsilon: cls(n, gamma=gamma, clip=clip, epsilon=epsilon,
                                               device=device)


def _frozen(cls: type[ObservationNormalizer], device: str) -> Any:
    def make(shape: tuple[int, ...], warmup: list[torch.Tensor]) -> ObservationNormalizer:
        normalizer = cls(shape, device=device)
        for batch in warmup:
            normalizer.update(batch)
        normalizer.frozen = True
        return normalizer

    return make


@pytest.mark.parametrize("device", DEVICES)
def test_the_runtime_matches_the_spec(device: str) -> None:
    running_moments_match_spec(_moments(RunningMoments, device), device=device)()
    observation_normalizer_matches_spec(_observations(ObservationNormalizer, device),
                                        device=device)()
    reward_scaler_matches_spec(_scaler(RewardScaler, device), device=device)()
    frozen_normalizer_is_a_fixed_affine_map(_frozen(ObservationNormalizer, device),
                                            device=device)()


def test_the_laws_of_the_spec_hold() -> None:
    merge_is_the_moments_of_the_concatenation()()
    update_is_order_invariant()()
    normalized_values_lie_within_the_clip()()


def test_the_frozen_module_is_the_normalisers_map_and_scripts() -> None:
    normalizer = ObservationNormalizer((3,))
    normalizer.update(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, -1.0]]))
    module = torch.jit.script(normalizer.frozen_module())
    x = torch.tensor([[0.5, 2.0, 40.0]])
    assert torch.equal(module(x), normalizer.normalize(x))
    assert torch.equal(module(x[0]), normalizer.normalize(x)[0])
    with pytest.raises(Exception, match=r"expected an observation of shape \[3\]"):
        module(torch.zeros(2, 4))


def test_a_frozen_reward_scaler_keeps_its_moments_and_still_tracks_the_returns() -> None:
    scaler = RewardScaler(2, gamma=0.5)
    scaler(torch.tensor([1.0, 2.0]), torch.tensor([False, False]), torch.tensor([False, True]))
    scaler.frozen = True
    before = scaler.moments.state_dict()
    scaled = scaler(torch.tensor([4.0, 4.0]), torch.tensor([False, False]),
                    torch.tensor([False, False]))
    after = scaler.moments.state_dict()
    assert after["count"] == before["count"] and torch.equal(after["var"], before["var"])
    assert scaler.returns.tolist() == [4.5, 4.0]
    assert torch.equal(scaled, (torch.tensor([4.0, 4.0], dtype=torch.float64)
                                / torch.sqrt(before["var"] + 1e-8)).clamp(-10, 10).float())


# Real bugs, each a subclass that changes one thing.


class SampleVarianceMoments(RunningMoments):
    """Merges the batch's sample variance (divided by B - 1) instead of the population one."""

    def update(self, x: torch.Tensor) -> None:
        x = x.to(device=self.mean.device, dtype=torch.float64)
        super().update(x)
        if x.shape[0] > 1:
            n = float(x.shape[0])
            self.var = self.var + x.var(dim=0, correction=0) * (n / (n - 1) - 1) * n / self.count


class CountlessMoments(RunningMoments):
    """Averages the old and the batch moments with equal weights: forgets the counts."""

    def update(self, x: torch.Tensor) -> None:
        x = x.to(device=self.mean.device, dtype=torch.float64)
        self.mean = (self.mean + x.mean(dim=0)) / 2
        self.var = (self.var + x.var(dim=0, correction=0)) / 2
        self.count += x.shape[0]


class EpsilonOutsideTheRoot(ObservationNormalizer):
    """`(x - mean) / (sqrt(var) + eps)`."""

    def normalize(self, observations: torch.Tensor) -> torch.Tensor:
        shifted = observations.double() - self.moments.mean
        scaled = shifted / (self.moments.var.sqrt() + self.epsilon)
        return scaled.clamp(-self.clip, self.clip).float()


class SampleVarianceNormalizer(ObservationNormalizer):
    """Normalises with the sample-variance moments."""

    def __init__(self, shape: tuple[int, ...], **kwargs: Any) -> None:
        super().__init__(shape, **kwargs)
        self.moments = SampleVarianceMoments(shape, device=kwargs.get("device", "cpu"))


class AlwaysLearning(ObservationNormalizer):
    """Ignores `frozen`: evaluation would drift the statistics."""

    def update(self, observations: torch.Tensor) -> None:
        self.moments.update(observations)


class NeverReset(RewardScaler):
    """The discounted return runs across episode ends."""

    def __call__(self, rewards, terminated, truncated):
        none = torch.zeros_like(terminated)
        return super().__call__(rewards, none, none)


class ResetOnTerminatedOnly(RewardScaler):
    """A time limit does not end the running return."""

    def __call__(self, rewards, terminated, truncated):
        return super().__call__(rewards, terminated, torch.zeros_like(truncated))


def merge_without_counts(a: spec.Moments, b: spec.Moments) -> spec.Moments:
    """Equal weights whatever the counts."""
    return spec.Moments((a.mean + b.mean) / 2, (a.var + b.var) / 2, a.count + b.count)


def sample_batch_moments(x: np.ndarray) -> spec.Moments:
    """Divides by `B - 1` (NumPy's `ddof=1`), NaN for one row."""
    with np.errstate(all="ignore"):
        return spec.Moments(x.mean(axis=0), x.var(axis=0, ddof=1), float(x.shape[0]))


def moving_average_update(moments: spec.Moments, x: np.ndarray) -> spec.Moments:
    """An exponential moving average: recent batches weigh more."""
    batch = spec.batch_moments(x)
    return spec.Moments(0.9 * moments.mean + 0.1 * batch.mean,
                        0.9 * moments.var + 0.1 * batch.var, moments.count + batch.count)


def normalize_without_clip(x, moments, clip, epsilon):
    return (x - moments.mean) / np.sqrt(moments.var + epsilon)


def normalize_clipped_above_only(x, moments, clip, epsilon):
    return np.minimum(normalize_without_clip(x, moments, clip, epsilon), clip)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (running_moments_match_spec(_moments(SampleVarianceMoments, "cpu")), "var"),
        (running_moments_match_spec(_moments(CountlessMoments, "cpu")), "mean|var"),
        (observation_normalizer_matches_spec(_observations(SampleVarianceNormalizer, "cpu")),
         "normalised"),
        (observation_normalizer_matches_spec(_observations(EpsilonOutsideTheRoot, "cpu")),
         "normalised"),
        (reward_scaler_matches_spec(_scaler(NeverReset, "cpu")), "scaled rewards"),
        (reward_scaler_matches_spec(_scaler(ResetOnTerminatedOnly, "cpu")), "scaled rewards"),
        (frozen_normalizer_is_a_fixed_affine_map(_frozen(AlwaysLearning, "cpu")), "frozen"),
        (merge_is_the_moments_of_the_concatenation(merge=merge_without_counts), "mean|var"),
        (merge_is_the_moments_of_the_concatenation(batch_moments=sample_batch_moments), "var"),
        (update_is_order_invariant(moving_average_update), "mean|var"),
        (normalized_values_lie_within_the_clip(normalize_without_clip), "clip"),
        (normalized_values_lie_within_the_clip(normalize_clipped_above_only), "clip"),
    ],
    ids=[
        "sample-variance", "countless-merge", "sample-variance-normaliser", "eps-outside-root",
        "never-reset", "reset-on-terminated-only", "frozen-ignored", "law-merge-countless",
        "law-merge-sample-variance", "law-moving-average", "law-no-clip", "law-clip-above-only",
    ],
)
def test_each_property_catches_a_real_bug(check: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        FIND_FAULT(check)()


def test_the_shared_map_is_the_spec_formula() -> None:
    x = torch.tensor([[5.0], [100.0], [-1.0]])
    got = normalize_observations(x, torch.tensor([1.0], dtype=torch.float64),
                                 torch.tensor([4.0], dtype=torch.float64), 10.0, 0.0)
    assert got.dtype == torch.float32 and got.ravel().tolist() == [2.0, 10.0, -1.0]

"""Every documented default of the public functions of the core, pinned: spec and runtime
returns, distributions, PPO loss and scans. A changed default fails here, and so does a new
default that is not added to the table (with its documentation)."""

import importlib
import inspect

import numpy as np
import pytest
import torch

from checked_rl.runtime import returns as runtime_returns
from checked_rl.runtime import scans
from checked_rl.runtime.ppo import loss as runtime_loss
from checked_rl.spec import ppo as spec_ppo
from checked_rl.spec import returns as spec_returns

MODULES = (
    "checked_rl.spec.returns",
    "checked_rl.spec.ppo",
    "checked_rl.spec.distributions",
    "checked_rl.spec.gaussian",
    "checked_rl.runtime.returns",
    "checked_rl.runtime.distributions",
    "checked_rl.runtime.gaussian",
    "checked_rl.runtime.ppo.loss",
    "checked_rl.runtime.scans",
    "checked_rl.spec.normalization",
)

LOSS_DEFAULTS = {
    "old_values": None,
    "clip_coef": 0.2,
    "value_clip_coef": None,
    "value_coef": 0.5,
    "entropy_coef": 0.01,
}
"""CleanRL's `ppo.py` (clip 0.2, value coefficient 0.5, entropy coefficient 0.01), no value
clipping, as the docstrings of `spec.ppo.ppo_loss` and `runtime.ppo.loss.ppo_loss` say."""

DEFAULTS = {
    ("checked_rl.spec.returns", "normalize_advantages"): {"eps": 1e-8},
    ("checked_rl.spec.ppo", "ppo_loss"): LOSS_DEFAULTS,
    ("checked_rl.spec.ppo", "ppo_loss_from_log_probs"): LOSS_DEFAULTS,
    ("checked_rl.spec.ppo", "value_loss"): {"old_values": None, "clip_coef": None},
    ("checked_rl.runtime.returns", "normalize_advantages"): {"eps": 1e-8},
    ("checked_rl.runtime.distributions", "sample_actions"): {"generator": None},
    ("checked_rl.runtime.gaussian", "sample_actions"): {"generator": None},
    ("checked_rl.runtime.ppo.loss", "ppo_loss"): LOSS_DEFAULTS,
    ("checked_rl.runtime.ppo.loss", "ppo_loss_from_log_probs"): LOSS_DEFAULTS,
    ("checked_rl.runtime.ppo.loss", "value_loss"): {"old_values": None, "clip_coef": None},
    ("checked_rl.spec.normalization", "initial_moments"): {"count": 1e-4},
    ("checked_rl.spec.normalization", "initial_reward_scaler"): {"count": 1e-4},
    ("checked_rl.spec.normalization", "normalize"): {"clip": 10.0, "epsilon": 1e-8},
    ("checked_rl.spec.normalization", "scale_rewards"): {
        "clip": 10.0, "epsilon": 1e-8, "frozen": False,
    },
}
"""`spec.normalization`'s are Stable-Baselines3's `VecNormalize` defaults (clip 10, epsilon
1e-8) and its `RunningMeanStd` prior count 1e-4, as its docstring says."""


def _defaults() -> dict[tuple[str, str], dict[str, object]]:
    found = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj):
                continue
            try:
                parameters = inspect.signature(obj).parameters
            except (TypeError, ValueError):
                continue
            defaults = {
                key: parameter.default
                for key, parameter in parameters.items()
                if parameter.default is not inspect.Parameter.empty
            }
            if defaults:
                found[module_name, name] = defaults
    return found


def test_every_default_of_the_core_is_pinned() -> None:
    found = _defaults()
    assert found.keys() == DEFAULTS.keys()
    for key, defaults in DEFAULTS.items():
        assert found[key] == defaults, key
        # 1 == 1.0 and True == 1: pin the types too.
        types = {name: type(value) for name, value in found[key].items()}
        assert types == {name: type(value) for name, value in defaults.items()}, key


def test_the_normalisation_epsilon_is_stable_baselines3s() -> None:
    assert spec_returns.NORMALIZE_EPS == runtime_returns.NORMALIZE_EPS == 1e-8
    assert "1e-8" in spec_returns.normalize_advantages.__doc__
    assert "1e-8" in runtime_returns.normalize_advantages.__doc__


def test_the_documented_sizes_of_the_scans() -> None:
    # Results do not depend on them (tests/test_runtime_returns.py shrinks them); speed does,
    # and docs/guides/performance.md measures these values: torch's intra-op grain size
    # (at::internal::GRAIN_SIZE, 32768), a cache-sized chunk, the width from which a row scan
    # beats a blocked one.
    assert scans.PIECE_ELEMENTS == 2**15 == 32768
    assert scans.CHUNK_ELEMENTS == 2**17
    assert scans.ROW_SCAN_MIN_ENVS == 2048
    assert scans.FLOAT_BITS == {torch.float32: torch.int32, torch.float64: torch.int64}


def test_the_loss_documents_its_defaults() -> None:
    for doc in (
        spec_ppo.ppo_loss.__doc__,
        spec_ppo.ppo_loss_from_log_probs.__doc__,
        runtime_loss.ppo_loss.__doc__,
    ):
        assert "CleanRL" in doc
    assert "clip 0.2, value coefficient 0.5, entropy coefficient 0.01" in spec_ppo.ppo_loss.__doc__


def _minibatch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return dict(
        logits=rng.normal(size=(6, 3)),
        actions=rng.integers(0, 3, size=6),
        old_log_probs=np.log(rng.uniform(0.05, 0.6, size=6)),
        advantages=rng.normal(size=6),
        values=rng.normal(size=6),
        returns=rng.normal(size=6),
    )


@pytest.mark.parametrize("setting", ["clip_coef", "value_coef", "entropy_coef"])
def test_a_loss_called_with_its_defaults_is_the_loss_of_the_documented_values(
    setting: str,
) -> None:
    batch = _minibatch()
    tensors = {key: torch.as_tensor(value) for key, value in batch.items()}
    explicit = {key: LOSS_DEFAULTS[key] for key in ("clip_coef", "value_coef", "entropy_coef")}
    spec_default, _ = spec_ppo.ppo_loss(**batch)
    runtime_default, _ = runtime_loss.ppo_loss(**tensors)
    assert spec_default == spec_ppo.ppo_loss(**batch, **explicit)[0]
    assert float(runtime_default) == pytest.approx(spec_default, rel=1e-12)
    # Another value of the setting gives another loss: the default is what the loss uses.
    other = {**explicit, setting: 2 * explicit[setting]}
    assert spec_ppo.ppo_loss(**batch, **other)[0] != spec_default
    assert float(runtime_loss.ppo_loss(**tensors, **other)[0]) != pytest.approx(
        float(runtime_default), rel=1e-12
    )

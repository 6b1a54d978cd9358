"""The trainer's minibatch loss follows the config: value clipping (`clip_vloss`) included."""

import numpy as np
import pytest
import torch

from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.rollout import TrainingBatch
from checked_rl.runtime.ppo.update import minibatch_loss
from checked_rl.spec import ppo as spec_ppo


def _batch(model: ActorCritic, generator: torch.Generator) -> TrainingBatch:
    """Eight samples whose values at collection time lie far from the current critic's."""
    observations = torch.randn(8, 4, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        logits, values = model(observations)
    return TrainingBatch(
        observations=observations,
        actions=torch.randint(0, 2, (8,), generator=generator),
        log_probs=torch.log_softmax(logits, -1)[:, 0] - 0.1,
        advantages=torch.randn(8, generator=generator, dtype=torch.float64),
        returns=values + torch.randn(8, generator=generator, dtype=torch.float64),
        values=values + torch.linspace(-2.0, 2.0, 8, dtype=torch.float64),
    )


@pytest.mark.parametrize("clip_vloss", [False, True])
def test_minibatch_loss_is_the_spec_loss_of_the_config(clip_vloss: bool) -> None:
    torch.manual_seed(0)
    model = ActorCritic((4,), 2, hidden=8).double()
    batch = _batch(model, torch.Generator().manual_seed(1))
    config = PPOConfig(clip_coef=0.2, clip_vloss=clip_vloss, entropy_coef=0.01)
    loss, _ = minibatch_loss(model, batch, config)
    logits, values = model(batch.observations)
    expected, _ = spec_ppo.ppo_loss(
        logits=logits.detach().numpy(),
        actions=batch.actions.numpy(),
        old_log_probs=batch.log_probs.numpy(),
        advantages=batch.advantages.numpy(),
        values=values.detach().numpy(),
        returns=batch.returns.numpy(),
        old_values=batch.values.numpy(),
        clip_coef=0.2,
        value_clip_coef=0.2 if clip_vloss else None,
        value_coef=config.value_coef,
        entropy_coef=0.01,
    )
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


def test_clip_vloss_changes_the_loss_when_values_moved_beyond_the_clip() -> None:
    torch.manual_seed(0)
    model = ActorCritic((4,), 2, hidden=8).double()
    batch = _batch(model, torch.Generator().manual_seed(1))
    plain, _ = minibatch_loss(model, batch, PPOConfig(clip_coef=0.2))
    clipped, _ = minibatch_loss(model, batch, PPOConfig(clip_coef=0.2, clip_vloss=True))
    assert clipped.item() > plain.item()


def test_the_loss_reaches_every_parameter_of_actor_and_critic() -> None:
    torch.manual_seed(0)
    model = ActorCritic((4,), 2, hidden=8).double()
    batch = _batch(model, torch.Generator().manual_seed(1))
    loss, _ = minibatch_loss(model, batch, PPOConfig(clip_coef=0.2, entropy_coef=0.01))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name

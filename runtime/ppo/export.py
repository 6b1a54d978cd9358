"""A trained policy that leaves the package: the greedy actor as TorchScript (and ONNX).

`GreedyActor` wraps the actor MLP of an `ActorCritic`: it takes one observation `[*S]` or a
batch `[B, *S]` (any real dtype) and returns the greedy action. For discrete actions that is
the argmax of the logits, `[]` or `[B]` int64; for `Box` actions of shape `*act` it is the
Gaussian's mean (its mode), `[*act]` or `[B, *act]` float32, **not clipped** to the box (the
checkpoint does not hold the box's bounds): clip it to the action space before stepping an
environment that does not clip itself (Gymnasium's Pendulum and MountainCarContinuous do, and
so do checked-rl's sessions). The TorchScript file needs only `torch` to run
(`torch.jit.load(path)(observation)`); the ONNX file (written when the optional `onnx` and
`onnxscript` packages are installed) takes a batch `[B, *S]` of float32 and returns `[B]`
int64 or `[B, *act]` float32.
"""

import contextlib
import importlib.util
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from checked_rl.runtime.normalization import FrozenObservationNormalizer
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.normalizing import NormalizedActor

__all__ = ["GreedyActor", "export_onnx", "export_torchscript", "onnx_available"]


class GreedyActor(nn.Module):
    """The greedy action (argmax of the logits, or the unclipped Gaussian mean), for one
    observation or a batch."""

    action_shape: list[int]  # typed for TorchScript: it cannot infer an empty list's type

    def __init__(self, model: ActorCritic) -> None:
        super().__init__()
        self.actor = model.actor
        self.gaussian = model.action_shape is not None
        self.action_shape = list(model.action_shape or ())
        self.observation_shape = list(model.observation_shape)
        self.rank = len(model.observation_shape)
        self.inputs = int(torch.tensor(model.observation_shape).prod())

    def forward(self, observation: Tensor) -> Tensor:
        single = observation.dim() == self.rank
        batch = observation.unsqueeze(0) if single else observation
        if batch.dim() != self.rank + 1 or list(batch.shape[1:]) != self.observation_shape:
            raise ValueError(
                f"expected an observation of shape {self.observation_shape} or a batch of "
                f"them, got {list(observation.shape)}"
            )
        flat = batch.reshape(batch.shape[0], self.inputs).to(self.actor[0].weight.dtype)
        outputs = self.actor(flat)
        if self.gaussian:
            shape = [outputs.shape[0]] + self.action_shape  # noqa: RUF005 (TorchScript)
            actions = outputs.reshape(shape).detach()  # plain values, no autograd graph
        else:
            actions = outputs.argmax(dim=-1)
        return actions.squeeze(0) if single else actions


def export_torchscript(
    model: ActorCritic, path: Path, normalizer: FrozenObservationNormalizer | None = None
) -> None:
    """Write the greedy actor of `model` to `path` as TorchScript (behind `normalizer`, the
    checkpoint's observation normalisation, when given)."""
    actor: nn.Module = GreedyActor(model)
    if normalizer is not None:
        actor = NormalizedActor(actor, normalizer)
    scripted = torch.jit.script(actor.eval())
    torch.jit.save(scripted, str(path))


def onnx_available() -> bool:
    """Whether `onnx` and `onnxscript` (what `torch.onnx.export` needs) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


def export_onnx(
    model: ActorCritic, path: Path, normalizer: FrozenObservationNormalizer | None = None
) -> None:
    """Write the greedy actor of `model` to `path` as ONNX, with a dynamic batch size (behind
    `normalizer` when given)."""
    actor: nn.Module = GreedyActor(model)
    if normalizer is not None:
        actor = NormalizedActor(actor, normalizer)
    actor = actor.eval()
    example = torch.zeros(2, *model.observation_shape)
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the exporter's notes on packages it does not need
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            actor, (example,), input_names=["observation"], output_names=["action"],
            dynamic_shapes={"observation": {0: torch.export.Dim("batch")}}, dynamo=True,
            verbose=False,
        )
    logger.setLevel(level)
    program.save(str(path), external_data=False)

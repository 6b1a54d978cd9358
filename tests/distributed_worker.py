"""One rank of the gradient check of tests/test_distributed.py, run under torchrun.

`python tests/distributed_worker.py OUT` on every rank: each rank draws its own minibatch (from
its rank), z-scores the advantages over every rank (`DataParallel.normalize_advantages`),
backpropagates the PPO loss and averages the gradients (`DataParallel.average_gradients`).
Rank 0 also gathers every minibatch, concatenates them and computes the z-score and the
gradient of the concatenated minibatch the plain way. Then rank 1 nudges one parameter by one
unit in the last place and every rank records whether `check_replicas` caught it; the
metrics averaged over ranks are recorded too, and whether SIGTERM (what torchrun sends the other
ranks when one fails) became `PeerFailure`. Rank 0
saves it all to OUT for the test to compare.
"""

import os
import signal
import sys
import time

import torch
import torch.distributed as dist

from checked_rl.runtime.ppo import distributed
from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.rollout import TrainingBatch
from checked_rl.runtime.ppo.update import minibatch_loss
from checked_rl.runtime.returns import normalize_advantages

OBSERVATION_SIZE = 4
ACTIONS = 2
MINIBATCH = 32


def minibatch(rank: int, model: ActorCritic) -> tuple[TrainingBatch, torch.Tensor]:
    """Rank `rank`'s minibatch (advantages raw) from its own generator."""
    generator = torch.Generator().manual_seed(1000 + rank)
    observations = torch.randn(MINIBATCH, OBSERVATION_SIZE, generator=generator)
    actions = torch.randint(0, ACTIONS, (MINIBATCH,), generator=generator)
    with torch.no_grad():
        logits, values = model(observations)
        log_probs = torch.log_softmax(logits, dim=-1).gather(1, actions[:, None])[:, 0]
    advantages = 3.0 * torch.randn(MINIBATCH, generator=generator) + rank
    returns = values + torch.randn(MINIBATCH, generator=generator)
    return TrainingBatch(observations, actions, log_probs + 0.1 * torch.randn(
        MINIBATCH, generator=generator), advantages, returns, values), advantages


def gradient(model: ActorCritic, batch: TrainingBatch, config: PPOConfig) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss, _ = minibatch_loss(model, batch, config)
    loss.backward()
    return [parameter.grad for parameter in model.parameters()]


def main(out: str) -> None:
    parallel = distributed.join("cpu")
    config = PPOConfig(clip_vloss=True, entropy_coef=0.01)
    torch.manual_seed(parallel.rank)  # different on purpose: the broadcast must fix it
    model = ActorCritic((OBSERVATION_SIZE,), ACTIONS, 16)
    parallel.broadcast_parameters(model)
    batch, raw = minibatch(parallel.rank, model)
    scored = parallel.normalize_advantages(raw)
    batch = TrainingBatch(batch.observations, batch.actions, batch.log_probs, scored,
                          batch.returns, batch.values)
    gradient(model, batch, config)
    parallel.average_gradients(list(model.parameters()))
    averaged = [parameter.grad.clone() for parameter in model.parameters()]
    batches: list[TrainingBatch | None] = [None] * parallel.world_size
    dist.all_gather_object(batches, (batch, raw))
    result = {"averaged": averaged, "scored": scored,
              "metrics": parallel.average_metrics({"approx_kl": float(parallel.rank), "one": 1.0})}
    if parallel.rank == 0:
        whole = TrainingBatch(*(torch.cat([getattr(b, name) for b, _ in batches])
                                for name in TrainingBatch.__dataclass_fields__))
        whole_scored = normalize_advantages(torch.cat([r for _, r in batches]))
        whole = TrainingBatch(whole.observations, whole.actions, whole.log_probs, whole_scored,
                              whole.returns, whole.values)
        result["concatenated"] = [g.clone() for g in gradient(model, whole, config)]
        result["concatenated_scored"] = whole_scored[:MINIBATCH]
    parallel.check_replicas(model)  # identical so far: no error
    if parallel.rank == 1:
        with torch.no_grad():
            first = next(model.parameters())
            first.view(-1)[0] = torch.nextafter(first.view(-1)[0], torch.tensor(1.0))
    try:
        parallel.check_replicas(model)
        caught = ""
    except distributed.ReplicaMismatch as error:
        caught = str(error)
    flags: list[str | None] = [None] * parallel.world_size
    dist.all_gather_object(flags, caught)
    result["caught"] = flags
    result["seconds"] = parallel.seconds
    try:  # what torchrun sends the other ranks when one fails
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        result["sigterm"] = ""
    except distributed.PeerFailure as error:
        result["sigterm"] = str(error)
    if parallel.rank == 0:
        torch.save(result, out)
    parallel.close()


if __name__ == "__main__":
    main(sys.argv[1])

"""The actor-critic: two separate MLPs, one for the action logits and one for the state value.

Initialisation follows the PPO implementation details collected by Huang et al. 2022 ("The 37
Implementation Details of PPO", details 2-3): orthogonal weights with gain sqrt(2) on hidden
layers, 0.01 on the policy head and 1 on the value head, zero biases.
"""

import math
from collections.abc import Callable

from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["ActorCritic", "Policy", "mlp"]

Policy = Callable[[Tensor], tuple[Tensor, Tensor]]
"""What collection and evaluation need: observations `[N, *obs]` -> (logits `[N, A]`, values
`[N]`)."""

HIDDEN_GAIN = math.sqrt(2.0)
POLICY_HEAD_GAIN = 0.01
VALUE_HEAD_GAIN = 1.0


def mlp(inputs: int, hidden: int, outputs: int, head_gain: float) -> nn.Sequential:
    """Two tanh hidden layers of width `hidden`, orthogonally initialised."""
    layers = [
        nn.Linear(inputs, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, outputs),
    ]
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    for index, layer in enumerate(linears):
        gain = head_gain if index == len(linears) - 1 else HIDDEN_GAIN
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Actor and critic MLPs over flattened observations; no shared layers.

    >>> import torch
    >>> net = ActorCritic((4,), 2, hidden=8)
    >>> logits, values = net(torch.zeros(3, 4))
    >>> tuple(logits.shape), tuple(values.shape)
    ((3, 2), (3,))
    """

    def __init__(self, observation_shape: tuple[int, ...], n_actions: int, hidden: int) -> None:
        super().__init__()
        self.observation_shape = tuple(observation_shape)
        self.n_actions = n_actions
        inputs = math.prod(self.observation_shape)
        self.actor = mlp(inputs, hidden, n_actions, POLICY_HEAD_GAIN)
        self.critic = mlp(inputs, hidden, 1, VALUE_HEAD_GAIN)

    def _flat(self, observations: Tensor) -> Tensor:
        """`[B, *obs]` -> `[B, prod(obs)]` in the parameters' dtype, with a readable error."""
        rank = len(self.observation_shape)
        if tuple(observations.shape[observations.dim() - rank:]) != self.observation_shape:
            raise ValueError(
                f"ActorCritic: observations must end in shape {self.observation_shape}, "
                f"got {tuple(observations.shape)}"
            )
        flat = observations.reshape(observations.shape[0], -1)
        return flat.to(self.actor[0].weight.dtype)

    def forward(self, observations: Tensor) -> tuple[Float[Tensor, "B A"], Float[Tensor, " B"]]:
        """(logits `[B, A]`, values `[B]`): the `Policy` interface."""
        flat = self._flat(observations)
        return self.actor(flat), self.critic(flat).squeeze(-1)

    def describe(self) -> dict[str, object]:
        """Constructor arguments, so a checkpoint can rebuild the network."""
        return {
            "observation_shape": list(self.observation_shape),
            "n_actions": self.n_actions,
            "hidden": self.actor[0].out_features,
        }


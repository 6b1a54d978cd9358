"""The actor-critic: two separate MLPs, one for the policy's distribution and one for the state
value, and the head (`runtime.ppo.heads`) that the action space picks.

Initialisation follows the PPO implementation details collected by Huang et al. 2022 ("The 37
Implementation Details of PPO", details 2-3): orthogonal weights with gain sqrt(2) on hidden
layers, 0.01 on the policy head and 1 on the value head, zero biases. For `Discrete(n)` actions
the actor gives `n` logits (categorical head); for `Box` actions of shape `*act` it gives the
`prod(act)` means of a diagonal Gaussian whose log-std is one state-independent parameter,
initialised to 0 (details 1 and 4 of the continuous-action details, as CleanRL's
`ppo_continuous_action.py`).
"""

import math
from collections.abc import Callable
from typing import Any

from jaxtyping import Float
from torch import Tensor, nn

from checked_rl.runtime.ppo.heads import HEADS, CategoricalHead, GaussianHead, PolicyHead

__all__ = ["ActorCritic", "Policy", "mlp"]

Policy = Callable[[Tensor], tuple[Tensor, Tensor]]
"""What collection and evaluation need: observations `[N, *obs]` -> (the distribution's
parameters `[N, A]`: logits, or Gaussian means; values `[N]`)."""

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

    Give `n_actions` for discrete actions (a categorical head), or `action_shape` (and
    `n_actions=None`) for a `Box` of that shape (a Gaussian head).

    >>> import torch
    >>> net = ActorCritic((4,), 2, hidden=8)
    >>> logits, values = net(torch.zeros(3, 4))
    >>> tuple(logits.shape), tuple(values.shape), net.head.name
    ((3, 2), (3,), 'categorical')
    >>> net = ActorCritic((3,), None, hidden=8, action_shape=(1,))
    >>> means, values = net(torch.zeros(3, 3))
    >>> tuple(means.shape), net.head.name, net.head.log_std.tolist()
    ((3, 1), 'gaussian', [0.0])
    """

    def __init__(
        self,
        observation_shape: tuple[int, ...],
        n_actions: int | None,
        hidden: int,
        *,
        action_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if (n_actions is None) == (action_shape is None):
            raise ValueError(
                f"ActorCritic: give n_actions (discrete) or action_shape (Box), exactly one, "
                f"got n_actions={n_actions!r}, action_shape={action_shape!r}"
            )
        self.observation_shape = tuple(observation_shape)
        self.n_actions = n_actions
        self.action_shape = None if action_shape is None else tuple(action_shape)
        inputs = math.prod(self.observation_shape)
        outputs = n_actions if self.action_shape is None else math.prod(self.action_shape)
        self.actor = mlp(inputs, hidden, outputs, POLICY_HEAD_GAIN)
        self.critic = mlp(inputs, hidden, 1, VALUE_HEAD_GAIN)
        self.head: PolicyHead = (
            CategoricalHead() if self.action_shape is None else GaussianHead(self.action_shape)
        )

    @classmethod
    def for_session(cls, session: Any, hidden: int) -> "ActorCritic":
        """The network for a session's spaces: categorical for `Discrete`, Gaussian for `Box`."""
        box = session.action_box
        if box is None:
            return cls(session.observation_shape, session.n_actions, hidden)
        return cls(session.observation_shape, None, hidden, action_shape=tuple(box.shape))

    @classmethod
    def from_description(cls, network: Any) -> "ActorCritic":
        """The network `describe()` gave (a checkpoint's `network`); one written before heads
        were recorded (no `head` key) is categorical. Raises TypeError on a malformed one."""
        if not isinstance(network, dict):
            raise TypeError(f"network must be a dict, got {type(network).__name__}")
        head = network.get("head", "categorical")
        shape = network.get("observation_shape")
        sizes = {"observation_shape": shape, "hidden": [network.get("hidden")]}
        if head == "categorical":
            sizes["n_actions"] = [network.get("n_actions")]
        elif head == "gaussian":
            sizes["action_shape"] = network.get("action_shape")
        else:
            raise TypeError(f"network head must be one of {list(HEADS)}, got {head!r}")
        for name, value in sizes.items():
            if not (isinstance(value, list) and value and all(
                    isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 1 << 24
                    for n in value)):
                raise TypeError(
                    f"network must give {name} (positive integers) for a {head} head, "
                    f"got {network!r}"
                )
        if head == "categorical":
            return cls(tuple(shape), network["n_actions"], network["hidden"])
        return cls(tuple(shape), None, network["hidden"],
                   action_shape=tuple(network["action_shape"]))

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
        """(logits or Gaussian means `[B, A]`, values `[B]`): the `Policy` interface."""
        flat = self._flat(observations)
        return self.actor(flat), self.critic(flat).squeeze(-1)

    def describe(self) -> dict[str, object]:
        """Constructor arguments and head, so a checkpoint can rebuild the network
        (`from_description`)."""
        described: dict[str, object] = {
            "observation_shape": list(self.observation_shape),
            "hidden": self.actor[0].out_features,
            "head": self.head.name,
        }
        if self.action_shape is None:
            described["n_actions"] = self.n_actions
        else:
            described["action_shape"] = list(self.action_shape)
        return described

"""checked-rl: reinforcement learning whose fast code is checked against a readable reference.

Three layers, one direction of dependency:

- `checked_rl.spec`: the reference semantics in pure NumPy, written to be read;
- `checked_rl.runtime`: the same math batched in PyTorch (CPU or CUDA), checked sessions,
  PPO training and the `checked-rl` command;
- `checked_rl.properties`: Hypothesis properties tying the runtime to the spec, usable on your
  own code (the conformance kit).

Importing `checked_rl` imports none of them but registers the batched runtime environments with
Gymnasium as vector environments, `checked_rl/<Id>` (`checked_rl.runtime.env_registry`, which
imports Gymnasium only), so that `gymnasium.make_vec("checked_rl/<Id>")` works after
`import checked_rl`, and `"checked_rl:checked_rl/<Id>"` without it; the runtime and torch load
when one is made.
"""

__version__ = "0.2.0"

from checked_rl.runtime.env_registry import register_vector_envs

register_vector_envs()

"""checked-rl: reinforcement learning whose fast code is checked against a readable reference.

Three layers, one direction of dependency:

- `checked_rl.spec`: the reference semantics in pure NumPy, written to be read;
- `checked_rl.runtime`: the same math batched in PyTorch (CPU or CUDA), checked sessions,
  PPO training and the `checked-rl` command;
- `checked_rl.properties`: Hypothesis properties tying the runtime to the spec, usable on your
  own code (the conformance kit).

Importing `checked_rl` imports none of them, so `import checked_rl` is cheap.
"""

__version__ = "0.2.0"

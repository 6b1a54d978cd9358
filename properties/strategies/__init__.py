"""The public Hypothesis strategies of checked-rl, in one namespace.

Sizes are bounded by named constants in each submodule; floats are finite unless a strategy is
about special values.
"""

from checked_rl.properties.strategies.envs import *  # noqa: F403
from checked_rl.properties.strategies.rollouts import *  # noqa: F403
from checked_rl.properties.strategies.transitions import *  # noqa: F403

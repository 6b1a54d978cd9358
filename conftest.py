"""Repository-wide pytest set-up: the Hypothesis profile applies to doctests and tests alike."""

from checked_rl.properties.profiles import load_profile

load_profile()

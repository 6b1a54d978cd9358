"""Repository-wide pytest set-up: the Hypothesis profile applies to doctests and tests alike."""

from properties.profiles import load_profile

load_profile()

# Entry points that run a program when imported are not collected for doctests.
collect_ignore_glob = ["*/__main__.py"]

"""Hypothesis settings profiles, chosen by the environment variable `HYPOTHESIS_PROFILE`.

- `dev`: fast feedback while editing (few examples).
- `ci`: the default for continuous integration (more examples, no deadline, derandomized so that
  a run is reproducible).
- `thorough`: nightly-style runs with many examples.
"""

import os

from hypothesis import HealthCheck, settings

PROFILES = {
    "dev": settings(max_examples=25, deadline=None),
    "ci": settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "thorough": settings(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}


def load_profile(default: str = "dev") -> str:
    """Register every profile and load the one named by `HYPOTHESIS_PROFILE` (or `default`)."""
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE must be one of {sorted(PROFILES)}, got {name!r}")
    settings.load_profile(name)
    return name

"""Strategies: rollouts."""

__all__: list[str] = []

"""Strategies: envs."""

__all__: list[str] = []

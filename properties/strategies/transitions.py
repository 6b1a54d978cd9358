"""Strategies: transitions."""

__all__: list[str] = []

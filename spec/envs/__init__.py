"""Reference environments: pure functions over explicit, immutable state."""

"""Proximal Policy Optimization: the loss, typed rollouts, collection and training."""

"""Batched environments stepped together as tensors on any device."""

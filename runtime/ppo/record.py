"""Watch a policy: one greedy episode of a Gymnasium environment recorded as a GIF.

The environment is made with `render_mode="rgb_array"` (the classic-control ones draw with
`pygame`, the optional `render` extra) and reset with the given seed; each frame it renders is
kept and written as an animated GIF with Pillow (installed with matplotlib).
"""

import os
from pathlib import Path

import gymnasium
import numpy as np
import torch

from checked_rl.runtime.ppo.model import ActorCritic

__all__ = ["FRAME_MS", "RecordError", "record_episode"]

FRAME_MS = 20
"""Milliseconds per GIF frame (50 frames per second, CartPole's own rate)."""


class RecordError(ValueError):
    """The episode cannot be recorded (no renderer, an unknown id, a format not supported)."""


def record_episode(model: ActorCritic, env_id: str, path: Path, *, seed: int,
                   max_episode_steps: int) -> tuple[float, int]:
    """Record the greedy policy's episode from `seed` into the GIF `path`; (return, length)."""
    if path.suffix.lower() != ".gif":
        raise RecordError(f"--record {path}: only .gif files are written, got {path.suffix!r}")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # frames in memory: no window, no sound
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        env = gymnasium.make(env_id, render_mode="rgb_array")
    except gymnasium.error.Error as error:
        raise RecordError(f"cannot render {env_id!r}: {type(error).__name__}: {error}") from None
    try:
        observation, _ = env.reset(seed=seed)
        frames = [_frame(env, env_id)]
        total, length = 0.0, 0
        with torch.no_grad():
            while length < max_episode_steps:
                outputs, _ = model(torch.as_tensor(np.asarray(observation))[None])
                greedy = model.head.greedy(outputs)[0]
                action = int(greedy) if model.action_shape is None else _box_action(env, greedy)
                observation, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                length += 1
                frames.append(_frame(env, env_id))
                if terminated or truncated:
                    break
    finally:
        env.close()
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=FRAME_MS, loop=0)
    return total, length


def _box_action(env: gymnasium.Env, mean: torch.Tensor) -> np.ndarray:
    """The greedy Gaussian action clipped to the environment's box, as a session would."""
    space = env.action_space
    return np.clip(mean.numpy().astype(space.dtype), space.low, space.high)


def _frame(env: gymnasium.Env, env_id: str) -> np.ndarray:
    """The rendered RGB frame, or a one-line error naming what rendering needs."""
    try:
        frame = env.render()
    except gymnasium.error.DependencyNotInstalled as error:
        raise RecordError(
            f"rendering {env_id} needs pygame, an optional extra: pip install "
            f"'checked-rl[render]' ({type(error).__name__})"
        ) from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise RecordError(f"{env_id} does not render RGB frames (render() gave {type(frame)})")
    return frame.astype(np.uint8)

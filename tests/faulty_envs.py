"""Real Gymnasium environments that misbehave on purpose, for the fault-injection tests.

Importing this module registers them, so `gymnasium.make("tests.faulty_envs:NanAtStep-v0")`
works in this process and in a bridge server (which imports the module by that path).

Every one is the same small environment, `Drift`: a 3-vector observation in `Box(-10, 10)`,
two actions that nudge it down or up by 0.05, reward 1 per step, terminated after
`episode_length` steps. The faulty variants behave exactly like it until the `fault_step`-th
step after a reset (1-based), and then do their one wrong thing. With `fault_seeds`, only a copy
last reset with one of those seeds misbehaves, so a test can check that messages name the right
environment (a session reset with seed s seeds environment i with s + i).

`alive` and `assert_gone` check, without psutil, that no server process outlived a test.
"""

import os
import subprocess
import sys
import time
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

OBSERVATION_SIZE = 3
OBSERVATION_BOUND = 10.0
NUDGE = 0.05
EXIT_CODE = 7


class Drift(gym.Env):
    """The well-behaved base: a point nudged up or down, one reward per step.

    Args:
        episode_length: steps until `terminated`.
        fault_step: the step (1-based, counted from the last reset) at which a faulty
            subclass misbehaves.
        fault_seeds: if given, only a copy last reset with one of these seeds misbehaves.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self, episode_length: int = 50, fault_step: int = 3, fault_seeds: list[int] | None = None
    ) -> None:
        self.observation_space = gym.spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (OBSERVATION_SIZE,), np.float32
        )
        self.action_space = gym.spaces.Discrete(2)
        self.episode_length = episode_length
        self.fault_step = fault_step
        self.fault_seeds = None if fault_seeds is None else set(fault_seeds)
        self.last_seed: int | None = None
        self.state = np.zeros(OBSERVATION_SIZE, dtype=np.float32)
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw the point uniformly in [-1, 1]^3."""
        super().reset(seed=seed)
        if seed is not None:
            self.last_seed = seed
        self.state = self.np_random.uniform(-1.0, 1.0, OBSERVATION_SIZE).astype(np.float32)
        self.t = 0
        return self.state.copy(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Nudge the point; misbehave at the fault step (in subclasses)."""
        self.t += 1
        self.state = self.state + np.float32(NUDGE * (2 * int(action) - 1))
        observation, reward = self.state.copy(), 1.0
        if self.t == self.fault_step and self._faulty():
            observation, reward = self.fault(observation, reward)
        return observation, reward, self.t >= self.episode_length, False, {}

    def _faulty(self) -> bool:
        """Whether this copy misbehaves (`fault_seeds`)."""
        return self.fault_seeds is None or self.last_seed in self.fault_seeds

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        """What goes wrong at the fault step: nothing, in the base environment."""
        return observation, reward


class NanAtStep(Drift):
    """Observation entry 1 becomes NaN at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        observation[1] = np.nan
        return observation, reward


class InfiniteReward(Drift):
    """The reward is +inf at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        return observation, float("inf")


class WrongShape(Drift):
    """The observation has one entry too many at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        return np.append(observation, np.float32(0.0)), reward


class OutOfBox(Drift):
    """Observation entry 0 leaves the `Box` (100 > 10) at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        observation[0] = 10 * OBSERVATION_BOUND
        return observation, reward


class RaiseInStep(Drift):
    """`step` raises `RuntimeError` at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        raise RuntimeError(f"simulated simulator failure at step {self.t}")


class SleepForever(Drift):
    """`step` never returns from the fault step on (for timeouts; only through the bridge)."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        while True:
            time.sleep(60)


class ExitMidEpisode(Drift):
    """The process exits with code `EXIT_CODE` at the fault step (only through the bridge)."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        print(f"faulty env: giving up at step {self.t}", file=sys.stderr, flush=True)
        os._exit(EXIT_CODE)


class PrintsEveryStep(Drift):
    """Writes to standard output on every step, through Python and straight to descriptor 1."""

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        print(f"PrintsEveryStep: step {self.t + 1}, action {action}")
        os.write(1, b"CRLB raw bytes from the simulator on fd 1\n")
        return super().step(action)


class StrReward(Drift):
    """The reward is the string "1.5" at the fault step (which `float()` would parse)."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, Any]:
        return observation, "1.5"


class ArrayReward(Drift):
    """The reward is an array of two entries at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, Any]:
        return observation, np.array([1.0, 2.0])


class ArrayFlag(Drift):
    """`terminated` is an array of two bools at the fault step."""

    def step(self, action: int) -> tuple[np.ndarray, float, Any, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        if self.t == self.fault_step and self._faulty():
            terminated = np.array([True, False])
        return observation, reward, terminated, truncated, info


class IntTruncated(Drift):
    """`truncated` is the int 1 at the fault step (not a bool)."""

    def step(self, action: int) -> tuple[np.ndarray, float, bool, Any, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        if self.t == self.fault_step and self._faulty():
            truncated = 1
        return observation, reward, terminated, truncated, info


class BigEndian(Drift):
    """Every observation is big-endian float32 (`>f4`): legal values, another byte order."""

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        observation, info = super().reset(**kwargs)
        return observation.astype(">f4"), info

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        return observation, reward

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, *rest = super().step(action)
        return (observation.astype(">f4"), *rest)


class Counter16(Drift):
    """A legal `Box(0, 1000, (3,), uint16)` observation: the step count in every entry."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.observation_space = gym.spaces.Box(0, 1000, (OBSERVATION_SIZE,), np.uint16)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(**kwargs)
        return np.zeros(OBSERVATION_SIZE, np.uint16), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        _, reward, terminated, truncated, info = super().step(action)
        return np.full(OBSERVATION_SIZE, self.t, np.uint16), reward, terminated, truncated, info


class ExitInStep(Drift):
    """`step` calls `sys.exit(0)` at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        sys.exit(0)


class InterruptInStep(Drift):
    """`step` raises `KeyboardInterrupt` itself (no signal) at the fault step."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        raise KeyboardInterrupt("raised by the environment")


class RaiseInClose(Drift):
    """`close()` raises."""

    def close(self) -> None:
        raise RuntimeError("simulated failure in close")


class Spawner(Drift):
    """Starts a child (`sleep`) and, through `sh`, a grandchild when made; with `hang`, its
    fault step appends this process's id to the file `marker` and never returns."""

    def __init__(self, hang: bool = False, marker: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hang, self.marker = hang, marker
        self.children = [
            subprocess.Popen(["sleep", "600"]),
            subprocess.Popen(["sh", "-c", "sleep 600 & wait"]),
        ]

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, float]:
        if self.hang:
            if self.marker is not None:
                with open(self.marker, "a") as file:
                    file.write(f"{os.getpid()}\n")
            while True:
                time.sleep(60)
        return observation, reward


HANDED = {
    "reward:str": ("reward", "1.5"),
    "reward:bytes": ("reward", b"1"),
    "reward:complex": ("reward", 1 + 2j),
    "reward:none": ("reward", None),
    "reward:dict": ("reward", {}),
    "reward:array": ("reward", np.array([1.0, 2.0])),
    "reward:size-1 array": ("reward", np.array([1.0])),
    "reward:huge int": ("reward", 10**400),
    "reward:0-d array": ("reward", np.array(0.5)),
    "reward:numpy bool": ("reward", np.True_),
    "reward:float16": ("reward", np.float16(0.25)),
    "terminated:int": ("terminated", 1),
    "terminated:str": ("terminated", "yes"),
    "terminated:array": ("terminated", np.array([True, False])),
    "truncated:none": ("truncated", None),
    "truncated:float": ("truncated", 0.0),
    "terminated:numpy bool": ("terminated", np.False_),
    "observation:list": ("observation", [0.0, 0.0, 0.0]),
    "observation:ragged": ("observation", [[1.0], [1.0, 2.0]]),
    "observation:float64": ("observation", np.zeros(OBSERVATION_SIZE)),
    "observation:int32": ("observation", np.zeros(OBSERVATION_SIZE, np.int32)),
    "observation:scalar": ("observation", np.float32(0.0)),
    "observation:str": ("observation", "abc"),
    "observation:object": ("observation", np.array([None] * OBSERVATION_SIZE, dtype=object)),
    "observation:big-endian": ("observation", np.zeros(OBSERVATION_SIZE, ">f4")),
    "observation:non-contiguous": ("observation", np.zeros(2 * OBSERVATION_SIZE, np.float32)[::2]),
    "result:4-tuple": ("result", 4),
    "result:list": ("result", list),
    "result:none": ("result", None),
}
"""What `Hands` hands over at its fault step: the name of a case, the part, the value."""


class Hands(Drift):
    """At the fault step, hands over the value `HANDED[what]` in place of one part of the step
    result (or returns a step result of another form)."""

    def __init__(self, what: str = "reward:str", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.what = what

    def step(self, action: int) -> Any:
        observation, reward, terminated, truncated, info = super().step(action)
        if self.t != self.fault_step or not self._faulty():
            return observation, reward, terminated, truncated, info
        part, value = HANDED[self.what]
        result = {"observation": observation, "reward": reward, "terminated": terminated}
        result |= {"truncated": truncated, "info": info}
        if part != "result":
            result[part] = value
            return tuple(result.values())
        if value == 4:
            return observation, reward, terminated, truncated
        return None if value is None else list(result.values())


class ResetHands(Drift):
    """A reset of a copy seeded with one of `fault_seeds` returns `what`: "bare" (the
    observation without its info), "list" (a list, not a tuple) or "float64" (an observation
    of another dtype), from its `first_faulty_reset`-th reset on (2: at the first auto-reset)."""

    def __init__(self, what: str = "bare", first_faulty_reset: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.what = what
        self.first_faulty_reset = first_faulty_reset

    def reset(self, **kwargs: Any) -> Any:
        observation, info = super().reset(**kwargs)
        self.resets = getattr(self, "resets", 0) + 1
        if not self._faulty() or self.resets <= self.first_faulty_reset - 1:
            return observation, info
        if self.what == "bare":
            return observation
        if self.what == "list":
            return [observation, info]
        return observation.astype(np.float64), info


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (exited, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def assert_gone(pids: list[int], wait: float = 0.0) -> None:
    """Assert that none of `pids` runs, polling for up to `wait` seconds (for orphans)."""
    deadline = time.monotonic() + wait
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in pids if alive(pid)]
    assert not survivors, f"server processes {survivors} outlived the test"


FAULTY_ENVS = {
    "Drift-v0": Drift,
    "NanAtStep-v0": NanAtStep,
    "InfiniteReward-v0": InfiniteReward,
    "WrongShape-v0": WrongShape,
    "OutOfBox-v0": OutOfBox,
    "RaiseInStep-v0": RaiseInStep,
    "SleepForever-v0": SleepForever,
    "ExitMidEpisode-v0": ExitMidEpisode,
    "PrintsEveryStep-v0": PrintsEveryStep,
    "StrReward-v0": StrReward,
    "ArrayReward-v0": ArrayReward,
    "ArrayFlag-v0": ArrayFlag,
    "IntTruncated-v0": IntTruncated,
    "BigEndian-v0": BigEndian,
    "Counter16-v0": Counter16,
    "ExitInStep-v0": ExitInStep,
    "InterruptInStep-v0": InterruptInStep,
    "RaiseInClose-v0": RaiseInClose,
    "Spawner-v0": Spawner,
    "Hands-v0": Hands,
    "ResetHands-v0": ResetHands,
}

# Registered once, also when pytest imports this file a second time under another module name.
for _env_id, _env_class in FAULTY_ENVS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_env_class)

"""Checkpoints an adversary wrote: files that are not checkpoints, checkpoints with a field
missing, of the wrong type or shape, a network of another size, an environment id naming a
module, and the temporary files of interrupted saves. Each is refused in one line naming the
file, never with advice to disable `weights_only`, and nothing in a file is ever run or
imported."""

import dataclasses
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from checked_rl.runtime.ppo.checkpoint import (
    REQUIRED_KEYS,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.train import train
from tests.runs_helpers import one_line_error, run

pytestmark = pytest.mark.timeout(900)  # fresh interpreters on a loaded machine

TINY = PPOConfig(num_envs=2, horizon=8, hidden=8, updates=1, eval_episodes=2,
                 eval_max_episode_steps=20)


class Payload:
    """Unpickling this would create the marker file: what a malicious checkpoint does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("good") / "c.pt"
    train(TINY, checkpoint_path=path)
    return load_checkpoint(path)


def _refused(path: Path) -> str:
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and str(path) in message, message
    assert "weights_only" not in message and "trust" not in message.lower(), message
    return message


def _saved(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "x.pt"
    buffer = io.BytesIO()
    torch.save(document, buffer)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("content", [
    os.urandom(4096), b"", b"{}", json.dumps({"format": 2}).encode(), b"PK\x03\x04" + b"0" * 64,
])
def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    assert "is not a checkpoint of checked-rl" in _refused(path)


def test_a_pickle_with_a_payload_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    for path, write in ((tmp_path / "plain.pt", pickle.dumps(Payload(str(marker)))),):
        path.write_bytes(write)
        assert "is not a checkpoint of checked-rl" in _refused(path)
    torch_path = _saved(tmp_path, {"format": 2, "x": Payload(str(marker))})
    assert "is not a checkpoint of checked-rl" in _refused(torch_path)
    assert not marker.exists()


def test_other_objects_and_versions_are_one_line(tmp_path: Path, good: dict) -> None:
    assert "has format" in _refused(_saved(tmp_path, [1, 2, 3]))
    assert "has format 3, expected 2" in _refused(_saved(tmp_path, {**good, "format": 3}))


@pytest.mark.parametrize("key", sorted(REQUIRED_KEYS - {"format"}))
def test_a_missing_field_is_one_line(tmp_path: Path, good: dict, key: str) -> None:
    document = {name: value for name, value in good.items() if name != key}
    assert f"lacks keys ['{key}']" in _refused(_saved(tmp_path, document))


def _model_with(good: dict, **changes: Any) -> dict:
    return {**good, "model": {**good["model"], **changes}}


BROKEN = {
    "update a string": lambda g: {**g, "update": "3"},
    "negative steps": lambda g: {**g, "env_steps": -1},
    "config not a dict": lambda g: {**g, "config": [1]},
    "config out of range": lambda g: {**g, "config": {**g["config"], "gamma": 2.0}},
    "config unknown field": lambda g: {**g, "config": {**g["config"], "x": 1}},
    "run without kind": lambda g: {**g, "run": {"env_id": "CartPole-v1", "device": "cpu"}},
    "network of another size": lambda g: {**g, "network": {**g["network"], "hidden": 16}},
    "network shape garbage": lambda g: {**g, "network": {**g["network"],
                                                         "observation_shape": ["4"]}},
    "parameter of another shape": lambda g: _model_with(g, **{"actor.0.weight": torch.zeros(3, 3)}),
    "parameter missing": lambda g: {**g, "model": {k: v for k, v in g["model"].items()
                                                   if k != "critic.0.bias"}},
    "parameter extra": lambda g: _model_with(g, extra=torch.zeros(1)),
    "parameter NaN": lambda g: _model_with(g, **{"actor.0.bias": torch.full((8,), float("nan"))}),
    "parameter integer": lambda g: _model_with(
        g, **{"actor.0.bias": torch.zeros(8, dtype=torch.int64)}),
    "rng of floats": lambda g: {**g, "rng": torch.zeros(3)},
    "optimizer a list": lambda g: {**g, "optimizer": []},
    "log broken": lambda g: {**g, "log": {"title": "x"}},
    "config and network disagree": lambda g: {
        **g, "config": {**g["config"], "hidden": 16}},
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_field_is_one_line_before_use(tmp_path: Path, good: dict, case: str) -> None:
    message = _refused(_saved(tmp_path, BROKEN[case](good)))
    assert "is not valid: " in message


MARKER_MODULE = """
from pathlib import Path
Path("imported-marker").write_text("the module ran")
"""


def test_loading_never_imports_the_module_a_checkpoint_names(tmp_path: Path,
                                                             good: dict) -> None:
    (tmp_path / "evil.py").write_text(MARKER_MODULE)
    run_meta = {**good["run"], "env_id": "evil:Env-v0", "kind": "gymnasium"}
    save_checkpoint(tmp_path / "c.pt", {**good, "run": run_meta})
    line = one_line_error(run("eval", "c.pt", cwd=tmp_path), "eval")
    assert "comes from module 'evil'" in line
    line = one_line_error(run("train", "--resume", "c.pt", cwd=tmp_path), "train")
    assert "--trust-checkpoint-env" in line
    assert run("export", "c.pt", "p.pt", "--no-onnx", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "imported-marker").exists()


def test_a_successful_save_removes_what_interrupted_saves_left(tmp_path: Path,
                                                               good: dict) -> None:
    stale = [tmp_path / ".c.pt.abc123.tmp", tmp_path / ".c.pt.xyz.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.abc.tmp"
    other.write_bytes(b"another file's save")
    save_checkpoint(tmp_path / "c.pt", good)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "c.pt"]
    assert load_checkpoint(tmp_path / "c.pt")["update"] == good["update"]


def test_a_resume_with_a_config_the_checkpoint_does_not_fit_is_refused(
    tmp_path: Path, good: dict
) -> None:
    save_checkpoint(tmp_path / "c.pt", good)
    with pytest.raises(CheckpointError, match="cannot resume with hidden=16"):
        train(dataclasses.replace(TINY, hidden=16), resume=tmp_path / "c.pt")

"""`checked-rl train` and `checked-rl eval`: runs, help, overrides, bad input, `--version`,
Ctrl-C; in real subprocesses where the process matters, otherwise through the same `main`."""

import dataclasses
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import griffe
import pytest
import torch

import checked_rl
from checked_rl.runtime.cli import main
from checked_rl.runtime.ppo.checkpoint import load_checkpoint, save_checkpoint
from checked_rl.runtime.ppo.config import PRESETS, PPOConfig
from checked_rl.runtime.sessions import KINDS

COMMAND = [sys.executable, "-m", "checked_rl.runtime.cli"]
TINY = ["--num-envs", "2", "--horizon", "8", "--hidden", "8", "--eval-episodes", "2",
        "--eval-max-episode-steps", "20", "--quiet"]
REPOSITORY = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 300.0
"""Seconds a subprocess may take to get going (a safety net, not an assertion about speed)."""


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs write their run directories under runs/ of the current directory."""
    monkeypatch.chdir(tmp_path)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=STARTUP_TIMEOUT)


def test_train_then_eval(tmp_path: Path) -> None:
    log, checkpoint = tmp_path / "rl" / "log.json", tmp_path / "rl" / "run.pt"
    trained = _run("train", *TINY, "--updates", "2", "--eval-every", "1", "--log", str(log),
                   "--checkpoint", str(checkpoint), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    document = json.loads(log.read_text())
    assert document["steps"] == [16, 32] and len(document["series"][0]["values"]) == 2
    assert "preset=CartPole-v1" in document["notes"] and "num_envs=2" in document["notes"]
    assert log.with_suffix(".png").is_file()
    evaluated = _run("eval", str(checkpoint), "--episodes", "3", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith("average greedy return over 3 episodes: ")
    assert 1.0 <= float(evaluated.stdout.split(": ")[1].split()[0]) <= 500.0


def _normalised(text: str) -> str:
    return " ".join(text.split())


def test_help_shows_every_field_with_its_docstring_and_the_default_preset_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps help, also at hyphens, to COLUMNS
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0
    shown = _normalised(capsys.readouterr().out)
    for option in ("--preset NAME", "--kind KIND", "--env-id ID", "--device DEVICE",
                   "--log PATH|off", "--checkpoint PATH", "--resume RUN_DIR_OR_CHECKPOINT",
                   "--run-dir DIR", "--seeds LIST", "--jobs J", "--trust-checkpoint-env",
                   "--quiet"):
        assert option in shown
    assert _normalised(", ".join(KINDS)) in shown
    # The docstrings as the documentation site reads them (griffe, mkdocstrings' reader).
    documented = griffe.load("checked_rl.runtime.ppo.config", search_paths=[str(REPOSITORY)])
    attributes = documented["PPOConfig"].attributes
    for field in dataclasses.fields(PPOConfig):
        option = "--" + field.name.replace("_", "-")
        docstring = attributes[field.name].docstring
        assert docstring is not None, f"PPOConfig.{field.name} has no docstring"
        default = getattr(PRESETS["default"], field.name)
        if field.type is bool:
            assert f"{option}, --no-{option[2:]} " in shown
        else:
            assert f"{option} {field.type.__name__.upper()} " in shown
        described = f" {_normalised(docstring.value)} (CartPole-v1 preset: {default})"
        assert described in shown, f"{option}: {described!r} not in the help"


TINY_TORCHLEAN = ["--preset", "torchlean", "--updates", "1", "--eval-every", "1",
                  "--eval-episodes", "1", "--eval-max-episode-steps", "10", "--quiet"]


def test_given_fields_override_the_preset_and_the_others_keep_its_values(tmp_path: Path) -> None:
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    assert main(["train", *TINY_TORCHLEAN, "--anneal-lr", "--clip-vloss",
                 "--checkpoint", str(first)]) == 0
    expected = dataclasses.replace(PRESETS["torchlean"], updates=1, eval_every=1,
                                   eval_episodes=1, eval_max_episode_steps=10, anneal_lr=True,
                                   clip_vloss=True)
    assert PPOConfig.from_dict(load_checkpoint(first)["config"]) == expected
    assert expected.hidden == 32 != PRESETS["default"].hidden
    # Resumed, the checkpoint's config is the base: only the fields given change.
    assert main(["train", "--resume", str(first), "--updates", "2", "--no-anneal-lr",
                 "--no-clip-vloss", "--checkpoint", str(second), "--quiet"]) == 0
    resumed = PPOConfig.from_dict(load_checkpoint(second)["config"])
    assert resumed == dataclasses.replace(expected, updates=2, anneal_lr=False, clip_vloss=False)


def test_version(tmp_path: Path) -> None:
    assert checked_rl.__version__ == importlib.metadata.version("checked-rl")
    result = _run("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"checked-rl {checked_rl.__version__}\n", "")


BAD_INPUT = {
    "negative size": (["train", "--num-envs", "-1"], "num_envs must be a positive integer"),
    "zero size": (["train", "--num-envs", "0"],
                  "PPOConfig.num_envs must be a positive integer, got 0"),
    "out of range": (["train", "--gamma", "1.5"], "PPOConfig.gamma must lie in [0, 1], got 1.5"),
    "unknown kind": (["train", "--kind", "atari"], "--kind must be one of spec, torch"),
    "not a number": (["train", "--updates", "many"],
                     "argument --updates: expected INT, got 'many'"),
    "not a float": (["train", "--gamma", "high"], "argument --gamma: expected FLOAT, got 'high'"),
    "a value for a flag": (["train", "--anneal-lr=yes"],
                           "argument --anneal-lr/--no-anneal-lr: ignored explicit argument"),
    "unknown option": (["train", "--num-env", "2"], "unrecognized arguments: --num-env 2"),
    "missing value": (["train", "--updates"], "argument --updates: expected one argument"),
    "unknown preset": (["train", "--preset", "fastest"], "unknown preset 'fastest'"),
    "preset with resume": (["train", "--resume", "absent.pt", "--preset", "default"],
                           "--preset cannot be combined with --resume"),
    "missing resume checkpoint": (["train", "--resume", "absent.pt"],
                                  "--resume absent.pt: no such run directory or checkpoint"),
    "uneven minibatches": (["train", "--minibatches", "3"], "minibatches must divide"),
    "unknown device": (["train", "--device", "tpu"], "--device must be cpu or cuda, got 'tpu'"),
    "missing checkpoint": (["eval", "absent.pt"], "checkpoint absent.pt does not exist"),
    "no episodes": (["eval", "absent.pt", "--episodes", "0"], "--episodes must be a positive"),
    "eval not a number": (["eval", "absent.pt", "--seed", "x"],
                          "argument --seed: invalid int value: 'x'"),
    "no episode steps": (["eval", "absent.pt", "--max-episode-steps", "0"],
                         "--max-episode-steps must be a positive integer, got 0"),
    "0.1 eval option": (["eval", "absent.pt", "--max-steps", "5"],
                        "unrecognized arguments: --max-steps 5"),
    "0.1 config option": (["train", "--eval-max-steps", "5"],
                          "unrecognized arguments: --eval-max-steps 5"),
    "unknown torch id": (["train", "--kind", "torch", "--env-id", "Nope-v0"],
                         "cannot train on 'Nope-v0' with a 'torch' session: ValueError: "
                         "make_session: 'torch' sessions provide the environments"),
    "unknown id, default kind": (["train", "--env-id", "Nope-v0"],
                                 "cannot train on 'Nope-v0' with a 'gymnasium' session: "
                                 "NameNotFound: Environment `Nope` doesn't exist"),
    "unknown preset id": (["train", "--preset", "Nope-v0"],
                          "unknown preset 'Nope-v0'; expected one of default, torchlean, "
                          "CartPole-v1, Acrobot-v1"),
    "unknown spec id": (["train", "--kind", "spec", "--env-id", "Nope-v0"],
                        "cannot train on 'Nope-v0' with a 'spec' session: ValueError: "
                        "make_session: 'spec' sessions provide the environments"),
    "unknown gymnasium id": (["train", "--kind", "gymnasium", "--env-id", "Nope-v0"],
                             "cannot train on 'Nope-v0' with a 'gymnasium' session: "
                             "NameNotFound: Environment `Nope` doesn't exist"),
    "unknown gymnasium-subprocess id": (
        ["train", "--kind", "gymnasium-subprocess", "--env-id", "Nope-v0"],
        "cannot train on 'Nope-v0' with a 'gymnasium-subprocess' session: bridge: server 0"),
    "unknown module": (["train", "--kind", "gymnasium", "--env-id", "no_such_module:Env-v0"],
                       "environment id 'no_such_module:Env-v0': module 'no_such_module' failed "
                       "to import: ModuleNotFoundError: No module named 'no_such_module'"),
    "no command": ([], "the following arguments are required: COMMAND"),
    "unknown command": (["trian"], "argument COMMAND: invalid choice: 'trian'"),
}
if not torch.cuda.is_available():
    BAD_INPUT["cuda without a GPU"] = (["train", "--device", "cuda"], "no CUDA GPU")
IN_A_SUBPROCESS = ("not a number", "zero size", "missing checkpoint", "unknown command",
                   "unknown torch id", "unknown gymnasium-subprocess id")
"""One case per route an error takes (argparse, config checks, handler, the top-level parser,
building the session in this process and in bridge servers); each subprocess costs a fresh
interpreter, so the other cases run the same `main` here."""


def _assert_one_line_error(args: list[str], message: str, stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    prog = f"checked-rl {args[0]}" if args and args[0] in ("train", "eval") else "checked-rl"
    assert lines[0].startswith(f"{prog}: error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize("case", IN_A_SUBPROCESS)
def test_bad_input_in_a_subprocess_is_one_line_without_traceback(
    case: str, tmp_path: Path
) -> None:
    args, message = BAD_INPUT[case]
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2
    _assert_one_line_error(args, message, result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize("case", sorted(set(BAD_INPUT) - set(IN_A_SUBPROCESS)))
def test_bad_input_is_one_line(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    args, message = BAD_INPUT[case]
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    captured = capsys.readouterr()
    _assert_one_line_error(args, message, captured.err)
    assert captured.out == ""


def test_ctrl_c_saves_the_completed_updates_and_exits_130(tmp_path: Path) -> None:
    log, checkpoint = tmp_path / "log.json", tmp_path / "run.pt"
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    process = subprocess.Popen(
        [*COMMAND, "train", *TINY, "--updates", "100000", "--eval-every", "1",
         "--checkpoint-every", "100000", "--log", str(log), "--checkpoint", str(checkpoint)],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not log.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.exists(), "training never wrote its first evaluation"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=STARTUP_TIMEOUT)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    saved = load_checkpoint(checkpoint)
    assert saved["update"] >= 1
    document = json.loads(log.read_text())
    assert document["steps"][-1] == saved["env_steps"]
    assert log.with_suffix(".png").is_file()


@pytest.mark.parametrize("command", ["train --resume", "eval"])
def test_a_file_that_is_not_a_checkpoint_is_one_line(command: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    args = [*command.split(), "notes.txt"]
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2
    message = ("checkpoint notes.txt is not a checkpoint of checked-rl (expected a file "
               "written by save_checkpoint; reading it as one failed with UnpicklingError)")
    _assert_one_line_error(args, message, result.stderr)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The checkpoint of a one-update torch run, as `load_checkpoint` reads it."""
    folder = tmp_path_factory.mktemp("saved")
    path = folder / "run.pt"
    run_dir = str(folder / "run")  # not the default runs/ of the current directory
    assert main(["train", *TINY, "--updates", "1", "--checkpoint", str(path), "--run-dir",
                 run_dir]) == 0
    return load_checkpoint(path)


def _eval_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line `checked-rl eval ARGS` ends with (exit code 2, nothing on stdout)."""
    assert main(["eval", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("checked-rl eval: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("kind", KINDS)
def test_eval_of_an_environment_the_kind_cannot_build_is_one_line(
    kind: str, saved_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nope.pt"
    save_checkpoint(path, {**saved_run, "run": {**saved_run["run"], "env_id": "Nope-v0"}})
    line = _eval_error([str(path), "--kind", kind, "--episodes", "2"], capsys)
    assert f"cannot evaluate on 'Nope-v0' with a {kind!r} session: " in line


def test_eval_of_a_model_that_does_not_fit_its_network_is_one_line(
    saved_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wider.pt"
    save_checkpoint(path, {**saved_run, "network": {**saved_run["network"], "hidden": 16}})
    line = _eval_error([str(path)], capsys)
    assert f"checkpoint {path} is not valid: network hidden=16 differs from its config's " \
        "hidden=8" in line
    wider = {**saved_run["config"], "hidden": 16}
    save_checkpoint(path, {**saved_run, "config": wider,
                           "network": {**saved_run["network"], "hidden": 16}})
    line = _eval_error([str(path)], capsys)
    assert f"checkpoint {path} is not valid: model parameter actor.0.weight has shape (8, 4)" \
        in line and "needs (16, 4)" in line


def test_eval_cuts_episodes_at_max_episode_steps(
    saved_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.pt"
    save_checkpoint(path, saved_run)
    assert main(["eval", str(path), "--episodes", "2", "--max-episode-steps", "3"]) == 0
    assert capsys.readouterr().out == (
        "average greedy return over 2 episodes: 3.00 (std 0.00, min 3.00, max 3.00)\n"
        "episode lengths: mean 3.0, min 3, max 3\n")

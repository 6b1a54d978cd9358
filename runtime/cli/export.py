"""`checked-rl export CHECKPOINT out.pt`: the greedy actor as TorchScript (and ONNX).

    checked-rl export runs/CartPole-v1/<run>/best.pt policy.pt

writes `policy.pt` (TorchScript: `torch.jit.load("policy.pt")(observation)` gives the greedy
action for one observation `[*S]` or a batch `[B, *S]`) and, when the optional `onnx` and
`onnxscript` packages are installed, `policy.onnx` beside it (`--no-onnx` to skip it). The
checkpoint is validated first, and its environment is never imported (export needs none).
"""

import argparse
from typing import Any

from checked_rl.runtime.cli import CLIError

__all__ = ["register", "run_export"]


def register(subparsers: Any) -> None:
    """Add the `export` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint's greedy policy as TorchScript (and ONNX when installed)",
        description="Write a checkpoint's greedy actor as TorchScript, and as ONNX when the "
                    "onnx and onnxscript packages are installed.",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a file saved by train")
    parser.add_argument("output", metavar="OUT", help="the TorchScript file to write (.pt)")
    parser.add_argument("--no-onnx", action="store_true",
                        help="do not write OUT with the suffix .onnx even if onnx is installed")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Handler of `checked-rl export`."""
    from checked_rl.runtime.ppo.export import export_onnx, export_torchscript, onnx_available
    from checked_rl.runtime.ppo.normalizing import frozen_observations
    from checked_rl.runtime.ppo.rundir import check_file_path, check_writable

    try:
        output = check_file_path("OUT", args.output)
        check_writable(output.parent, "the directory of OUT")
    except (ValueError, OSError) as error:
        raise CLIError(str(error)) from None
    policy = _load(args.checkpoint)  # the environment is not needed: nothing is imported
    normalizer = frozen_observations(policy.saved)  # None unless trained on normalised ones
    export_torchscript(policy.model, output, normalizer)
    print(f"TorchScript: {output} (torch.jit.load(path)(observation) -> greedy action)")
    if args.no_onnx:
        return 0
    onnx_path = output.with_suffix(".onnx")
    if not onnx_available():
        print("ONNX: not written (needs the onnx and onnxscript packages: "
              "pip install 'checked-rl[onnx]')")
        return 0
    export_onnx(policy.model, onnx_path, normalizer)
    print(f"ONNX: {onnx_path}")
    return 0


def _load(path: str) -> Any:
    """The validated checkpoint's policy, without resolving its environment id."""
    from checked_rl.runtime.cli.loading import LoadedPolicy
    from checked_rl.runtime.ppo.checkpoint import CheckpointError, load_checkpoint

    try:
        saved = load_checkpoint(path)
    except CheckpointError as error:
        raise CLIError(str(error)) from None
    return LoadedPolicy(path, saved, saved["run"]["env_id"])

"""`nafft export`: a model as ONNX checked against PyTorch in onnxruntime, folded safetensors, or an official NAFNet
`.pth` for chaiNNer and ComfyUI (spandrel)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nafft.cli.args import add_threads_argument, positive_float

FORMATS = ("onnx", "safetensors", "pth")
HELP = (
    "export a model to ONNX (dynamic batch/height/width, checked in onnxruntime), folded safetensors, or an official "
    "NAFNet .pth (chaiNNer, ComfyUI)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="CKPT",
                        help="a nafft .safetensors, an official NAFNet .pth, a bundled model's name (`nafft models`), or "
                             "a preset name (untrained weights, as nafft profile takes); default: the bundled default "
                             "model")
    parser.add_argument("legacy_checkpoint", nargs="?", metavar="CKPT",
                        help="the same as --checkpoint CKPT (the older spelling, kept for scripts)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: from the -o suffix). pth: the official NAFNet layout {'params': ...} that "
             "spandrel, chaiNNer and ComfyUI load (global pooling, as `nafft deblur --no-tlc`); variants official "
             "NAFNet cannot run are refused",
    )
    parser.add_argument("-o", "--out", required=True, metavar="FILE", help="output file")
    parser.add_argument(
        "--tolerance",
        type=positive_float,
        default=1e-4,
        help="largest |exported - PyTorch| accepted on the check inputs (default 1e-4)",
    )
    parser.add_argument(
        "--tlc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ONNX: TLC local pooling in the graph, with the checkpoint's training patch size (256 for official "
        "weights and presets); --no-tlc exports global pooling. Default on (a .pth always has global pooling)",
    )
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from nafft.errors import UserError
    from nafft.inference.export import export_onnx, export_safetensors
    from nafft.inference.nafnet_pth import export_official_pth
    from nafft.inference.opened_model import default_model_note, open_model

    if args.checkpoint and args.legacy_checkpoint and args.checkpoint != args.legacy_checkpoint:
        raise UserError(f"two checkpoints given ({args.legacy_checkpoint} and --checkpoint {args.checkpoint}); give one")
    spec = args.checkpoint or args.legacy_checkpoint
    out = Path(args.out)
    fmt = args.format or {f".{f}": f for f in FORMATS}.get(out.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{out}: cannot tell the format from the suffix; pass --format {', '.join(FORMATS)}"
        )
    # TLC only travels into an ONNX graph; a safetensors file keeps the training config, from which it is set again
    opened = open_model(spec, device="cpu", tlc=args.tlc and fmt == "onnx")
    note = default_model_note(spec)
    if note:
        print(note, file=sys.stderr)
    if opened.path is not None and out.exists() and out.resolve() == opened.path.resolve():
        raise UserError(f"{out}: refusing to write over the checkpoint being exported")
    if fmt == "onnx":
        result = export_onnx(opened, out, tolerance=args.tolerance, tlc=args.tlc)
    elif fmt == "pth":
        result = export_official_pth(opened, out, tolerance=args.tolerance)
    else:
        result = export_safetensors(opened, out, tolerance=args.tolerance)
    checks = ", ".join(f"{'x'.join(map(str, shape))}: {err:.1e}" for shape, err in result.checks)
    what = ["DO-Conv folded"] if opened.architecture.conv == "doconv" else []
    if fmt == "onnx":
        tlc = result.tlc_train_size
        what += [f"TLC (train size {tlc[0]})" if tlc else "global pooling", "dynamic batch/height/width"]
    elif fmt == "pth":
        what += ["official NAFNet layout for spandrel, chaiNNer and ComfyUI", "global pooling"]
    if not opened.trained:
        what.append(f"preset {spec} with untrained weights")
    print(
        f"wrote {out} ({fmt}, {result.size_bytes / 1e6:.1f} MB{''.join(', ' + w for w in what)}); "
        f"max |{fmt} - PyTorch| {result.max_error:.1e} <= {args.tolerance:g} on {checks}"
    )
    return 0

"""`nafft export`: a checkpoint as folded safetensors or as ONNX checked against PyTorch in onnxruntime."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "export a checkpoint to ONNX (dynamic batch/height/width, checked in onnxruntime) or folded safetensors"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a nafft .safetensors or an official NAFNet .pth")
    parser.add_argument(
        "--format",
        choices=("onnx", "safetensors"),
        default=None,
        help="output format (default: from the -o suffix)",
    )
    parser.add_argument("-o", "--out", required=True, metavar="FILE", help="output file")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest |exported - PyTorch| accepted on the check inputs (default 1e-4)",
    )


def run(args: argparse.Namespace) -> int:
    from nafft.errors import UserError
    from nafft.inference.export import export_onnx, export_safetensors
    from nafft.models import load_model, read_metadata

    out = Path(args.out)
    fmt = args.format or {".onnx": "onnx", ".safetensors": "safetensors"}.get(out.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{out}: cannot tell the format from the suffix; pass --format onnx or --format safetensors"
        )
    source = Path(args.checkpoint)
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise UserError(f"{out}: refusing to write over the checkpoint being exported")
    model = load_model(source)
    if fmt == "onnx":
        result = export_onnx(model, out, tolerance=args.tolerance)
    else:
        keep = {
            k: v
            for k, v in read_metadata(source).items()
            if not k.startswith(("format", "nafft_model_config"))
        }
        result = export_safetensors(model, out, metadata=keep, tolerance=args.tolerance)
    checks = ", ".join(f"{'x'.join(map(str, shape))}: {err:.1e}" for shape, err in result.checks)
    what = "DO-Conv folded, global pooling, dynamic batch/height/width" if fmt == "onnx" else "DO-Conv folded"
    print(
        f"wrote {out} ({fmt}, {result.size_bytes / 1e6:.1f} MB, {what}); "
        f"max |{fmt} - PyTorch| {result.max_error:.1e} <= {args.tolerance:g} on {checks}"
    )
    return 0

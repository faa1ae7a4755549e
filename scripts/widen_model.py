"""Write a NAFNet checkpoint grown to twice its width, computing the same function (`nafft.models.widen`).

    python scripts/widen_model.py runs/nafft-photo-stage3/checkpoints/ema_0006000.safetensors runs/wide/init.safetensors
    nafft train -c nafft-photo-stage3 --init runs/wide/init.safetensors --set model.width=32 ...

The output's card names the narrow file; an existing output is never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nafft.errors import UserError
from nafft.models import load_model, save_model
from nafft.models.widen import widen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("narrow", type=Path, help="a nafft safetensors checkpoint or an official NAFNet .pth")
    parser.add_argument("out", type=Path, help="the widened safetensors file (must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weight shares (default 0)")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out}: already exists; not overwritten", file=sys.stderr)
        return 2
    try:
        model = load_model(args.narrow)
        wide = widen(model, seed=args.seed)
    except (UserError, ValueError) as exc:
        print(f"error: {args.narrow}: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(wide, args.out, metadata={"widened_from": str(args.narrow), "widen_seed": str(args.seed)})
    print(f"{args.out}: width {model.config.width} -> {wide.config.width}, "
          f"{sum(p.numel() for p in wide.parameters()) / 1e6:.2f} M parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`nafft models`: the model weights shipped inside the package, with their cards."""

from __future__ import annotations

import argparse
import json

HELP = "list the bundled model weights (the default one is used when --checkpoint is left out) with their cards"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="print this model's whole card (default: all, short)")
    parser.add_argument("--json", action="store_true", help="the cards as JSON")


def _short(card: dict) -> str:
    scores = card.get("scores", {})
    parts = [card.get("summary", "")]
    if scores:
        parts.append("; ".join(f"{k}: {v}" for k, v in scores.items() if isinstance(v, str)))
    return "\n    ".join(p for p in parts if p)


def run(args: argparse.Namespace) -> int:
    from nafft.weights import bundled_models, bundled_weights, read_card

    if args.name:
        path = bundled_weights(args.name)
        card = read_card(path)
        if args.json:
            print(json.dumps(card, indent=2))
        else:
            print(f"{args.name} ({path}, {path.stat().st_size / 2**20:.1f} MiB)")
            for key, value in card.items():
                text = json.dumps(value) if isinstance(value, (dict, list)) else value
                print(f"  {key}: {text}")
        return 0
    models = bundled_models()
    if args.json:
        print(json.dumps({m.name: m.card for m in models}, indent=2))
        return 0
    if not models:
        print("no bundled models in this installation; pass --checkpoint to deblur and eval")
        return 0
    for model in models:
        tag = " (default)" if model.is_default else ""
        print(f"{model.name}{tag}: {model.path.stat().st_size / 2**20:.1f} MiB")
        if model.card:
            print(f"    {_short(model.card)}")
    return 0

"""Model weights that ship inside the package, so that `nafft deblur photo.jpg` needs no download.

Each bundled model is a nafft safetensors file in this folder (package data, found with `importlib.resources`)
whose metadata carries a model card under `CARD_KEY`: what the model is, what it was trained on and how long,
and what it scored, as JSON. `nafft models` prints the cards; docs/models.md has the default model's in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from nafft.errors import UserError

DEFAULT_MODEL = "nafft-photo"
CARD_KEY = "nafft_card"


@dataclass(frozen=True)
class BundledModel:
    """A weight file inside the package and its card (an empty dict when the file has none)."""

    name: str
    path: Path
    card: dict[str, Any]

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_MODEL


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card stored in a nafft weight file's metadata ({} when there is none)."""
    from nafft.models import read_metadata

    raw = read_metadata(path).get(CARD_KEY)
    if not raw:
        return {}
    try:
        card = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return card if isinstance(card, dict) else {}


def _folder() -> Path:
    return Path(str(resources.files(__name__)))


def bundled_models() -> list[BundledModel]:
    """Every weight file shipped in the package, the default first."""
    files = sorted(_folder().glob("*.safetensors"), key=lambda p: (p.stem != DEFAULT_MODEL, p.stem))
    return [BundledModel(p.stem, p, read_card(p)) for p in files]


def bundled_guard(name: str) -> Path | None:
    """The strength guard shipped for a bundled model (`guards/NAME.safetensors` beside the weights;
    `nafft.inference.guard`), None when it has none."""
    path = _folder() / "guards" / f"{name}.safetensors"
    return path if path.is_file() else None


def bundled_weights(name: str = DEFAULT_MODEL) -> Path:
    """The path of a bundled weight file.

    Raises:
        UserError: no such file in this installation (one line, naming what is there).
    """
    path = _folder() / f"{name}.safetensors"
    if not path.is_file():
        there = ", ".join(m.name for m in bundled_models()) or "none"
        raise UserError(f"no bundled model '{name}' in {_folder()} (bundled: {there}); pass --checkpoint FILE")
    return path


__all__ = ["CARD_KEY", "DEFAULT_MODEL", "BundledModel", "bundled_guard", "bundled_models", "bundled_weights",
           "read_card"]

"""The README and docs/: figures are what the code gives (the presets table comes from `nafft profile`), and every
relative link points at a file that exists."""

import re
from pathlib import Path

import torch

from nafft.models import build_model, reparameterize

ROOT = Path(__file__).resolve().parents[1]
MODELS_DOC = ROOT / "docs" / "models.md"


def test_presets_table_parameters_match_the_models():
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([\d,]+) \| ([\d,]+) \| [\d.]+ \|", MODELS_DOC.read_text(), re.M)
    assert len(rows) >= 15
    for name, inference, training in rows:
        with torch.device("meta"):
            model = build_model(name)
            train_count = sum(p.numel() for p in model.parameters())
            infer_count = sum(p.numel() for p in reparameterize(model).parameters())
        assert (infer_count, train_count) == (int(inference.replace(",", "")), int(training.replace(",", ""))), name


def test_relative_links_of_the_readme_and_docs_exist():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) >= 7
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name}: {target}"

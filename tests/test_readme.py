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


def test_the_default_model_figures_in_the_readme_are_its_card():
    from nafft.weights import DEFAULT_MODEL, bundled_models

    card = {m.name: m for m in bundled_models()}[DEFAULT_MODEL].card
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deblur a photograph"):readme.index("## From Python")]
    assert card["floors"], "the card carries the floor verdicts of the held-out suite"
    guard = card["guard"]  # the default strength is auto: the table is the guarded model's, strength 1 beside it
    for name, verdict in guard["floors"].items():  # every floor's set, with the card's figures and verdict
        r, full = guard["scores_detail"][name], card["scores_detail"][name]
        row = (f"| {r['input_psnr']:.2f} | {r['gain']:+.2f} | {r['median_gain']:+.2f} | {r['worst_gain']:+.2f} | "
               f"{r['improved']}/{r['images']} | {'holds' if verdict == 'holds' else 'missed'} | "
               f"{full['gain']:+.2f} / {full['worst_gain']:+.2f} |")
        assert row in section, name
    speed = card["speed"]
    assert f"{speed['1280x720']['seconds']:.1f} s" in section and f"{speed['4000x3000']['seconds']:.1f} s" in section
    assert f"{speed['4000x3000']['peak_rss_mib']:.0f} MiB" in section

"""README figures must be what the code gives (the presets table comes from `nafft profile`)."""

import re
from pathlib import Path

import torch

from nafft.models import build_model, reparameterize

README = Path(__file__).resolve().parents[1] / "README.md"


def test_presets_table_parameters_match_the_models():
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([\d,]+) \| ([\d,]+) \| [\d.]+ \|", README.read_text(), re.M)
    assert len(rows) >= 15
    for name, inference, training in rows:
        with torch.device("meta"):
            model = build_model(name)
            train_count = sum(p.numel() for p in model.parameters())
            infer_count = sum(p.numel() for p in reparameterize(model).parameters())
        assert (infer_count, train_count) == (int(inference.replace(",", "")), int(training.replace(",", ""))), name

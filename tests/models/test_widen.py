import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nafft.models import ModelConfig, NAFNet, load_model, save_model
from nafft.models.widen import widen
from tests.models.conftest import TINY, randomize

ROOT = Path(__file__).resolve().parents[2]


def narrow(seed: int = 0, **changes) -> NAFNet:
    return randomize(NAFNet(ModelConfig(**{**TINY, **changes})), seed=seed).eval()


@pytest.mark.parametrize("changes", [{}, {"enc_blocks": (2, 1, 1), "dec_blocks": (1, 2, 1), "middle_blocks": 2}])
def test_widened_network_computes_the_narrow_function(changes):
    model = narrow(**changes)
    wide = widen(model).eval()
    assert wide.config == model.config.replace(width=2 * model.config.width)
    assert sum(p.numel() for p in wide.parameters()) > 3 * sum(p.numel() for p in model.parameters())
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), wide(x)
    assert (expected - x).abs().mean() > 0.05  # the narrow network is far from the identity
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)  # float rounding only


def test_copies_grow_apart_in_training():
    wide = widen(narrow()).train()
    first, second = wide.intro.weight[0::2].detach().clone(), wide.intro.weight[1::2].detach().clone()
    torch.testing.assert_close(first, second)  # copies start equal
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    (wide(x) - x.flip(-1)).abs().mean().backward()
    torch.optim.SGD(wide.parameters(), lr=0.1).step()
    assert (wide.intro.weight[0::2] - wide.intro.weight[1::2]).abs().max() > 1e-4


def test_shares_depend_on_the_seed_only():
    model = narrow()
    a, b, c = widen(model, seed=0), widen(model, seed=0), widen(model, seed=1)
    assert torch.equal(a.encoders[0][0].conv1.weight, b.encoders[0][0].conv1.weight)
    assert not torch.equal(a.encoders[0][0].conv1.weight, c.encoders[0][0].conv1.weight)


@pytest.mark.parametrize("changes, key", [({"attention": "eca"}, "attention"), ({"conv": "doconv"}, "conv"),
                                          ({"skip": "fft"}, "skip"), ({"block_fft": True}, "block_fft")])
def test_variants_without_a_plain_copy_are_refused(changes, key):
    with pytest.raises(ValueError, match=f"differs in {key}"):
        widen(NAFNet(ModelConfig(**{**TINY, **changes})))


def test_script_writes_a_loadable_wider_file_and_never_overwrites(tmp_path):
    model = narrow()
    source, out = tmp_path / "narrow.safetensors", tmp_path / "wide.safetensors"
    save_model(model, source)
    script = [sys.executable, str(ROOT / "scripts" / "widen_model.py"), str(source), str(out)]
    done = subprocess.run(script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wide = load_model(out)
    assert wide.config.width == 16
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), model(x), atol=1e-5, rtol=1e-4)
    before = out.read_bytes()
    again = subprocess.run(script, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.read_bytes() == before
    bad = subprocess.run([*script[:2], str(tmp_path / "missing.safetensors"), str(tmp_path / "x.safetensors")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.safetensors" in bad.stderr
    assert not (tmp_path / "x.safetensors").exists()

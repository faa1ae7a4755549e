import pytest
import torch
from benchmarks.reference.nafnet import RefNAFNet

from nafft.models import ModelConfig, build_model, disable_tlc, enable_tlc, reparameterize
from nafft.models.conv import DOConv2d
from nafft.models.pooling import AvgPool
from tests.models.conftest import TINY, VARIANTS, randomize, variant_id

DOCONV = [v for v in VARIANTS if v.conv == "doconv"]


@pytest.mark.parametrize("cfg", DOCONV, ids=variant_id)
def test_fold_keeps_the_function_and_gives_the_plain_model(cfg):
    model = randomize(build_model(cfg)).eval()
    x = torch.rand(2, 3, 27, 33)
    with torch.no_grad():
        before = model(x)
        folded = reparameterize(model)
        after = folded(x)
    assert folded is model
    assert not any(isinstance(m, DOConv2d) for m in folded.modules())
    assert folded.config == cfg.replace(conv="conv")
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    plain = build_model(cfg.replace(conv="conv"))
    plain.load_state_dict(folded.state_dict(), strict=True)


def _tlc_pair(train_size: int):
    ref = randomize(RefNAFNet(width=8, enc=(1, 1, 2), middle=1, dec=(1, 1, 1)), std=0.1).eval()
    ours = build_model(ModelConfig(width=8, enc_blocks=(1, 1, 2), middle_blocks=1, dec_blocks=(1, 1, 1))).eval()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def test_tlc_equals_global_pooling_when_the_window_covers_the_feature_map():
    ref, model = _tlc_pair(64)
    x = torch.rand(1, 3, 40, 56)  # window at full resolution: 96 px > 56
    with torch.no_grad():
        global_out = model(x)
        enable_tlc(model, train_size=64)
        assert torch.equal(model(x), global_out)


@pytest.mark.parametrize("train_size", [24, 32, 36])
@pytest.mark.parametrize("size", [(61, 90), (70, 70), (33, 100)])
def test_tlc_equals_the_official_local_converter(train_size, size):
    ref, model = _tlc_pair(train_size)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        global_out = model(x)
        enable_tlc(model, train_size=train_size)
        ref.to_local(train_size)
        out, expected = model(x), ref(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # ... and it really is local: the result differs from global pooling by much more than the tolerance.
    assert (out - global_out).abs().max() > 100 * (out - expected).abs().max()


def test_tlc_windows_per_level_and_disable():
    model = build_model("nafnet-small")
    enable_tlc(model, train_size=256)
    kernels = {lvl: blk.attn.pool.kernel_size for lvl, blk in model.level_blocks()}
    assert kernels == {0: (384, 384), 1: (192, 192), 2: (96, 96), 3: (48, 48), 4: (24, 24)}
    disable_tlc(model)
    assert all(m.kernel_size is None for m in model.modules() if isinstance(m, AvgPool))


def test_tlc_works_with_eca_per_pixel():
    model = randomize(build_model(ModelConfig(**TINY, attention="eca")), std=0.3).eval()
    x = torch.rand(1, 3, 44, 52)
    with torch.no_grad():
        global_out = model(x)
        out = enable_tlc(model, train_size=16)(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert (out - global_out).abs().max() > 1e-3

import pytest
import torch
from benchmarks.reference.nafnet import RefNAFNet

from nafft.models import PRESETS, ModelConfig, build_model, infer_config, set_memory_format
from nafft.models.conv import DOConv2d
from nafft.models.fft import FFTResBlock
from tests.models.conftest import TINY, randomize


@pytest.mark.parametrize("size", [(30, 37), (17, 9), (32, 32)])
def test_output_shape_at_any_size(variant, size):
    model = randomize(build_model(variant)).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_every_parameter_receives_a_gradient(variant):
    model = randomize(build_model(variant))
    loss = model(torch.rand(2, 3, 20, 27)).square().mean()
    loss.backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []


def test_variant_modules_are_present_or_absent(variant):
    model = build_model(variant)
    names = {n for n, _ in model.named_modules()}
    assert any(n.endswith(f".{variant.attention}") for n in names)
    other = "eca" if variant.attention == "sca" else "sca"
    assert not any(n.endswith(f".{other}") for n in names)
    assert any(isinstance(m, DOConv2d) for m in model.modules()) == (variant.conv == "doconv")
    assert isinstance(model.skips[0], FFTResBlock) == (variant.skip == "fft")
    assert (model.encoders[0][0].fft is not None) == variant.block_fft


def test_config_is_inferred_back_from_the_state_dict(variant):
    assert infer_config(build_model(variant).state_dict()) == variant


def test_blocks_start_as_identity():
    # beta and gamma are zero-initialised, so a fresh block returns its input (as in NAFNet).
    model = build_model(ModelConfig(**TINY))
    block = model.encoders[0][0]
    x = torch.randn(1, 8, 12, 12)
    assert torch.equal(block(x), x)


def test_channels_last_gives_the_same_output(variant):
    model = randomize(build_model(variant)).eval()
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        ref = set_memory_format(model, False)(x)
        out = set_memory_format(model, True)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-3)


def test_memory_format_default_and_opt_out():
    model = build_model(ModelConfig(**TINY)).eval()
    x = torch.rand(1, 3, 16, 16)  # NCHW input
    seen = []
    model.intro.register_forward_pre_hook(lambda m, args: seen.append(args[0].stride(1) == 1))
    model(x)  # the default on the CPU: channels_last
    set_memory_format(model, False)
    model(x.contiguous(memory_format=torch.channels_last))  # opted out: NCHW whatever the input
    set_memory_format(model, None)
    model(x)
    assert seen == [True, False, True]
    assert model.intro.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_the_reference_nafnet_with_the_same_weights(channels_last):
    ref = randomize(RefNAFNet(width=8, enc=(1, 2), middle=1, dec=(1, 1))).eval()
    ours = build_model(ModelConfig(width=8, enc_blocks=(1, 2), middle_blocks=1, dec_blocks=(1, 1))).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    set_memory_format(ours, channels_last)
    x = torch.rand(2, 3, 29, 35)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("width,params", [(32, 17_111_907), (64, 67_888_835)])
def test_official_key_names_and_parameter_counts(width, params):
    with torch.device("meta"):
        ours = build_model(f"nafnet-w{width}")
        ref = RefNAFNet(width=width, enc=(1, 1, 1, 28), middle=1, dec=(1, 1, 1, 1))
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours_shapes == ref_shapes
    assert "encoders.3.27.sca.1.weight" in ours_shapes and "ups.0.0.weight" in ours_shapes
    assert sum(p.numel() for p in ours.parameters()) == params


def test_presets():
    expected = {f"{v}-{s}" for v in ("nafnet", "nafft-v1", "nafft-v2", "nafft-v3", "nafft-v4")
                for s in ("w32", "w64", "small")}
    assert set(PRESETS) == expected
    assert PRESETS["nafnet-small"] == ModelConfig(width=16, enc_blocks=(1, 1, 1, 2), middle_blocks=1,
                                                  dec_blocks=(1, 1, 1, 1))
    assert PRESETS["nafft-v1-w32"] == PRESETS["nafnet-w32"].replace(attention="eca")
    assert PRESETS["nafft-v2-w64"] == PRESETS["nafnet-w64"].replace(attention="eca", skip="fft")
    assert PRESETS["nafft-v3-w32"].enc_blocks == (1, 1, 1, 12) and PRESETS["nafft-v3-w32"].conv == "doconv"
    assert PRESETS["nafft-v4-w64"] == PRESETS["nafnet-w64"].replace(attention="eca", skip="fft", conv="doconv")
    assert PRESETS["nafft-v3-small"].enc_blocks == (1, 1, 1, 1)
    with torch.device("meta"):
        counts = {name: sum(p.numel() for p in build_model(name).parameters()) for name in PRESETS}
    # ECA has far fewer weights than SCA's C x C conv; v3 drops 16 blocks.
    assert counts["nafft-v1-w32"] < counts["nafnet-w32"] < counts["nafnet-w64"]
    assert counts["nafft-v3-w32"] < counts["nafft-v4-w32"]


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(attention="ecaa"), "did you mean 'eca'"),
        (dict(conv="do-conv"), "valid: conv, doconv"),
        (dict(skip="fftt"), "did you mean 'fft'"),
        (dict(enc_blocks=(1, 1), dec_blocks=(1,)), "same length"),
        (dict(eca_kernel=4), "odd"),
    ],
)
def test_bad_config_values_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'nafnet-w32'"):
        build_model("nafnet-w23")


def test_build_from_a_mapping_with_a_preset_base():
    model = build_model({"preset": "nafnet-small", "attention": "eca"})
    assert model.config == PRESETS["nafnet-small"].replace(attention="eca")
    with pytest.raises(ValueError, match="unknown key 'model.widht'.*width"):
        build_model({"widht": 8})


@pytest.mark.parametrize("tlc", [False, True], ids=["global", "tlc"])
def test_channels_last_path_equals_nchw_for_batches_and_tlc(variant, tlc):
    # The channels_last block folds beta/gamma and a global attention into the 1x1 weights (per image) and runs
    # the 1x1 convolutions on oneDNN; the NCHW block is the plain formula.
    from nafft.models import enable_tlc

    model = randomize(build_model(variant)).eval()
    if tlc:
        enable_tlc(model, 16)  # windows of 24, 12, 6 px: local at every level for 30x37 inputs
    x = torch.rand(2, 3, 30, 37)
    with torch.no_grad():
        ref = set_memory_format(model, False)(x)
        out = set_memory_format(model, True)(x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert out.stride(1) == 1  # computed in channels_last (a crop of the padded output)


def test_channels_last_path_gives_the_same_gradients():
    cfg = ModelConfig(**TINY, attention="eca", skip="fft")
    nchw, cl = set_memory_format(randomize(build_model(cfg)), False), build_model(cfg)
    cl.load_state_dict(nchw.state_dict())
    set_memory_format(cl, True)
    x = torch.rand(2, 3, 20, 27)
    for model in (nchw, cl):
        model(x).square().mean().backward()
    for (name, p), q in zip(nchw.named_parameters(), cl.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("bias", [True, False])
def test_conv1x1_equals_conv2d(bias):
    from nafft.models.layers import conv1x1

    x = torch.randn(2, 12, 9, 7).contiguous(memory_format=torch.channels_last)
    weight, b = torch.randn(5, 12, 1, 1), (torch.randn(5) if bias else None)
    out = conv1x1(x, weight, b)
    torch.testing.assert_close(out, torch.nn.functional.conv2d(x, weight, b), atol=1e-5, rtol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_path_under_autocast_keeps_a_float32_residual_stream():
    model = randomize(build_model(ModelConfig(**TINY, skip="fft"))).eval()
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        ref = set_memory_format(model, False)(x)
        outs = {}
        for channels_last in (False, True):
            set_memory_format(model, channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outs[channels_last] = model(x)
    for out in outs.values():
        assert out.dtype == torch.float32
    # both formats round alike: bfloat16 products, float32 sums along the residual stream
    errors = [(out - ref).abs().max().item() for out in outs.values()]
    assert max(errors) < 0.02 * ref.abs().max().item()
    torch.testing.assert_close(outs[True], outs[False], atol=0.02 * ref.abs().max().item(), rtol=0)


@pytest.mark.parametrize("attention", ["sca", "eca"])
@pytest.mark.parametrize("batch", [1, 2], ids=["folded-attention", "multiplied-attention"])
@pytest.mark.parametrize("window", [None, (6, 7)], ids=["global", "tlc"])
def test_the_fast_block_equals_the_plain_formula(attention, batch, window):
    """`channels_last_block` (what a channels_last NAF block runs) against `NAFBlock.forward`'s plain formula, block
    by block: one image folds a global attention into conv3's weights, two images multiply it in."""
    from nafft.models.nafnet import NAFBlock, channels_last_block
    from nafft.models.pooling import AvgPool

    block = randomize(NAFBlock(8, attention=attention, block_fft=True)).eval()
    for module in block.modules():
        if isinstance(module, AvgPool):
            module.kernel_size = window
    x = torch.rand(batch, 8, 13, 11)
    with torch.no_grad():
        plain = block(x)  # NCHW input: the formula
        fast = channels_last_block(block, x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    assert fast.is_contiguous(memory_format=torch.channels_last) and not plain.is_contiguous(
        memory_format=torch.channels_last)

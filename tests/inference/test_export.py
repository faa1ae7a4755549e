import copy

import numpy as np
import pytest
import torch

from nafft.inference.export import ExportError, export_onnx, export_safetensors
from nafft.models import build_model, disable_tlc, enable_tlc, load_model, read_metadata
from nafft.models.fft import FFTResBlock, irfft2_matmul, rfft2_matmul
from tests.inference.conftest import on_cpu, randomize, tiny_config

ort = pytest.importorskip("onnxruntime")

# the notes' variants at tiny size (v3 and v4 differ only in block counts), plus the FFT branch inside the blocks
VARIANTS = {
    "nafnet": {},
    "nafft-v1": {"attention": "eca"},
    "nafft-v2": {"attention": "eca", "skip": "fft"},
    "nafft-v4": {"attention": "eca", "skip": "fft", "conv": "doconv"},
    "blockfft-sigmoid": {"block_fft": True, "attention_gate": "sigmoid", "conv": "doconv"},
}


@pytest.mark.parametrize("size", [(15, 22), (13, 9), (1, 1), (2, 3), (16, 16), (37, 30)])
def test_matmul_dft_equals_torch_fft(size):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    spec = torch.fft.rfft2(x)
    re, im = rfft2_matmul(x)
    torch.testing.assert_close(re, spec.real)
    torch.testing.assert_close(im, spec.imag)
    # arbitrary half spectra (not Hermitian-consistent): the imaginary DC/Nyquist parts must be ignored alike
    re, im = torch.randn_like(spec.real), torch.randn_like(spec.real)
    torch.testing.assert_close(irfft2_matmul(re, im, *size), torch.fft.irfft2(torch.complex(re, im), s=size))


def test_fft_block_traced_for_export_agrees_with_default():
    """While tracing (ONNX export) the FFT block computes its transforms as matrix products: the same values."""
    block = randomize(FFTResBlock(4)).eval()
    x = torch.randn(2, 4, 21, 30)
    with torch.no_grad():
        default = block(x)
        traced = torch.jit.trace(block, x, check_trace=False)
        matmul = traced(x)
        assert "aten::fft" not in str(traced.inlined_graph)  # no FFT node: the matmul path was traced
    torch.testing.assert_close(matmul, default, rtol=0, atol=1e-5)
    assert not torch.equal(matmul, default)  # a different computation, the same values
    with torch.no_grad():
        torch.testing.assert_close(block(x), default, rtol=0, atol=0)  # outside a trace: torch.fft again


@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
def test_onnx_parity_with_dynamic_shapes(changes, tmp_path):
    model = randomize(build_model(tiny_config(**changes))).eval()
    path = tmp_path / "m.onnx"
    result = export_onnx(on_cpu(model), path)
    assert path.is_file() and result.format == "onnx"
    assert len(result.checks) == 2 and result.max_error <= 1e-4
    assert {s[0] for s, _ in result.checks} == {1, 2}  # two batch sizes through one graph
    # one more size, run here: odd, not a multiple of the padding, batch 3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 19, 26)
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (3, 3, 19, 26)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # axes (batch, channels, height, width) on both ends, not the tracer's 'Sliceoutput_dim_1'
    for value in (*session.get_inputs(), *session.get_outputs()):
        assert value.shape == ["batch", 3, "height", "width"], value.name


def test_onnx_mismatch_fails_and_leaves_no_file(tmp_path):
    model = randomize(build_model(tiny_config(skip="fft"))).eval()
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(on_cpu(model), path, tolerance=0.0)  # the matmul DFT rounds differently from torch.fft
    assert list(tmp_path.iterdir()) == []


def test_safetensors_export_is_folded_and_keeps_metadata(tmp_path):
    model = randomize(build_model(tiny_config(conv="doconv", attention="eca"))).eval()
    path = tmp_path / "folded.safetensors"
    result = export_safetensors(on_cpu(model), path, metadata={"nafft_train_config": '{"data": {"patch_size": 64}}'})
    assert result.max_error <= 1e-5
    reloaded = load_model(path)
    assert reloaded.config.conv == "conv"
    assert read_metadata(path)["nafft_train_config"] == '{"data": {"patch_size": 64}}'
    assert [p.name for p in tmp_path.iterdir()] == ["folded.safetensors"]


def test_export_cli(tmp_path, capsys):
    from nafft.cli import main
    from tests.inference.conftest import save_tiny_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "tiny.safetensors", conv="doconv", skip="fft")
    assert main(["export", str(ckpt), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "max |onnx - PyTorch|" in out
    assert "TLC (train size 32)" in out and "1x3x55x61" in out  # the checkpoint's crops; a check above the window
    assert main(["export", str(ckpt), "--no-tlc", "-o", str(tmp_path / "g.onnx")]) == 0
    out = capsys.readouterr().out
    assert "global pooling" in out and "55x61" not in out
    assert main(["export", str(ckpt), "-o", str(tmp_path / "folded.safetensors")]) == 0
    assert (
        read_metadata(tmp_path / "folded.safetensors")["nafft_train_config"] == '{"data": {"patch_size": 32}}'
    )
    assert load_model(tmp_path / "folded.safetensors").config.conv == "conv"
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.bin")]) == 2
    assert "--format" in capsys.readouterr().err


# FFT skips, FFT inside the blocks, ECA's per-pixel channel convolution, DO-Conv: every place TLC and the graph meet
TLC_VARIANTS = {
    "nafnet": {},
    "nafft-v2": {"attention": "eca", "skip": "fft"},
    "nafft-v4": {"attention": "eca", "skip": "fft", "conv": "doconv"},
    "blockfft-sigmoid": {"block_fft": True, "attention_gate": "sigmoid"},
}


@pytest.mark.parametrize("changes", TLC_VARIANTS.values(), ids=TLC_VARIANTS.keys())
def test_onnx_with_tlc_equals_pytorch_tlc_below_and_above_the_window(changes, tmp_path):
    model = randomize(build_model(tiny_config(**changes))).eval()
    enable_tlc(model, 24)  # windows: 36 px at full resolution, 18 at level 1, 9 in the middle
    path = tmp_path / "tlc.onnx"
    result = export_onnx(on_cpu(model), path)
    assert result.tlc_train_size == (24, 24) and result.max_error <= 1e-4
    assert any(s[2] > 36 and s[3] > 36 for s, _ in result.checks)  # the check covered local pooling too
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    glob = copy.deepcopy(model)
    disable_tlc(glob)
    for size in [(1, 3, 47, 53), (2, 3, 29, 61), (1, 3, 13, 19), (1, 3, 37, 36)]:  # odd, larger/smaller than 36
        x = torch.rand(size)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want, plain = model(x), glob(x)
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4)
        if size[2] > 36 or size[3] > 36:  # local pooling differs from global pooling there, by more than the check
            gap = np.abs(got - plain.numpy()).max()
            assert gap > 1e-4 and gap > 10 * np.abs(got - want.numpy()).max()


def test_onnx_without_tlc_has_global_pooling(tmp_path):
    model = enable_tlc(randomize(build_model(tiny_config())).eval(), 24)
    result = export_onnx(on_cpu(model), tmp_path / "global.onnx", tlc=False)
    assert result.tlc_train_size is None and len(result.checks) == 2
    session = ort.InferenceSession(str(tmp_path / "global.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 45, 50)
    with torch.no_grad():
        want = disable_tlc(model)(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], want, rtol=0, atol=1e-4)


def test_traceable_tlc_pooling_equals_eager_pooling():
    from nafft.models.pooling import AvgPool, _traceable_expand, _traceable_local_means

    for size, kernel in [((13, 17), (6, 11)), ((9, 20), (9, 5)), ((30, 4), (12, 12)), ((5, 7), (6, 11))]:
        x = torch.rand(2, 3, *size)
        pool = AvgPool()
        pool.kernel_size = kernel
        stats = pool(x)
        torch.testing.assert_close(_traceable_local_means(x, kernel).expand_as(stats), stats, rtol=0, atol=1e-6)
        torch.testing.assert_close(_traceable_expand(stats, x), pool.expand(stats, x.shape).expand_as(x))

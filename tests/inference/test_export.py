import numpy as np
import pytest
import torch

from nafft.inference.export import ExportError, export_onnx, export_safetensors
from nafft.models import build_model, load_model, read_metadata
from nafft.models.fft import FFTResBlock, dft_as_matmul, irfft2_matmul, rfft2_matmul
from tests.inference.conftest import randomize, tiny_config

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


def test_fft_block_export_mode_agrees_with_default():
    block = randomize(FFTResBlock(4))
    x = torch.randn(2, 4, 21, 30)
    default = block(x)
    with dft_as_matmul():
        matmul = block(x)
    torch.testing.assert_close(matmul, default, rtol=0, atol=1e-5)
    assert not torch.equal(matmul, default)  # a different computation, the same values
    torch.testing.assert_close(block(x), default, rtol=0, atol=0)  # the context switched it back


@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
def test_onnx_parity_with_dynamic_shapes(changes, tmp_path):
    model = randomize(build_model(tiny_config(**changes))).eval()
    path = tmp_path / "m.onnx"
    result = export_onnx(model, path)
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


def test_onnx_mismatch_fails_and_leaves_no_file(tmp_path):
    model = randomize(build_model(tiny_config(skip="fft"))).eval()
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(model, path, tolerance=0.0)  # the matmul DFT rounds differently from torch.fft
    assert list(tmp_path.iterdir()) == []


def test_safetensors_export_is_folded_and_keeps_metadata(tmp_path):
    model = randomize(build_model(tiny_config(conv="doconv", attention="eca"))).eval()
    path = tmp_path / "folded.safetensors"
    result = export_safetensors(model, path, metadata={"nafft_train_config": '{"data": {"patch_size": 64}}'})
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
    assert main(["export", str(ckpt), "-o", str(tmp_path / "folded.safetensors")]) == 0
    assert (
        read_metadata(tmp_path / "folded.safetensors")["nafft_train_config"] == '{"data": {"patch_size": 32}}'
    )
    assert load_model(tmp_path / "folded.safetensors").config.conv == "conv"
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.bin")]) == 2
    assert "--format" in capsys.readouterr().err

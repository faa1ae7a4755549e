"""Checks that need a CUDA device (marked `cuda`: skipped without one). `benchmarks/gpu_check.py` runs them first.

They compare the CUDA paths with the CPU ones on tiny models: NCHW and channels_last, TLC and the FFT blocks,
mixed-precision training steps, the SSIMs on the device and tiled prediction within a GPU memory budget.
"""

import math

import numpy as np
import pytest
import torch

from nafft.inference import OpenedModel, Predictor
from nafft.metrics import ssim_and_ssim3d
from nafft.models import build_model, enable_tlc, set_memory_format
from tests.inference.conftest import randomize, tiny_config

pytestmark = pytest.mark.cuda

VARIANTS = {"nafnet": {}, "fft-eca": {"attention": "eca", "skip": "fft"}, "blockfft": {"block_fft": True}}


@pytest.fixture(autouse=True)
def exact_cuda_matmuls():
    # TF32 would make CUDA differ from the CPU by 1e-3; the comparisons below are about the code paths
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("tlc", [False, True])
def test_cuda_forward_equals_cpu(changes, channels_last, tlc):
    model = randomize(build_model(tiny_config(**changes))).eval()
    if tlc:
        enable_tlc(model, 16)
    x = torch.rand(2, 3, 30, 37)
    with torch.no_grad():
        want = set_memory_format(model, False)(x)
        gpu = set_memory_format(model.cuda(), channels_last)
        got = gpu(x.cuda()).cpu()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_mixed_precision_training_steps_on_cuda(amp, channels_last):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    torch.manual_seed(0)
    model = set_memory_format(build_model(tiny_config(attention="eca", skip="fft")).cuda(), channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    x = torch.rand(4, 3, 32, 32, device="cuda")
    losses = []
    for _ in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16):
            pred = model(x)
        assert pred.dtype == torch.float32  # the global residual adds the float32 input
        loss = (pred - x).abs().mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_ssims_on_cuda_equal_the_cpu():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    cpu, gpu = ssim_and_ssim3d(a, b), ssim_and_ssim3d(a, b, device="cuda")
    assert gpu[0] == pytest.approx(cpu[0], abs=1e-10) and gpu[1] == pytest.approx(cpu[1], abs=1e-10)


def test_tiled_prediction_on_cuda_stays_within_the_memory_budget():
    model = enable_tlc(randomize(build_model(tiny_config())).eval(), 32)
    image = torch.rand(3, 300, 420)
    opened = OpenedModel.from_network(model, device="cuda")
    whole = Predictor(opened, tile=0)(image)
    budget = 8 << 20  # bytes: small enough to force tiles for this image
    predictor = Predictor(opened, memory_budget=budget)
    assert predictor.tile_for(300, 420) is not None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    tiled = predictor(image)
    torch.cuda.synchronize()
    assert predictor.last_tiles > 1
    assert torch.cuda.max_memory_allocated() - base <= budget
    assert (tiled - whole).abs().max() < 0.05  # TLC windows clipped to the tiles

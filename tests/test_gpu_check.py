"""benchmarks/gpu_check.py on a machine without CUDA: the CPU parts run, everything else is reported as skipped."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only report")
def test_gpu_check_runs_its_cpu_parts_and_lists_what_it_skipped(tmp_path, capsys):
    gpu_check = load_gpu_check()
    rc = gpu_check.main(["--out", str(tmp_path), "--model", "nafnet-small", "--train-size", "32", "--batch", "2",
                         "--steps", "1", "--warmup", "1", "--eval-size", "48", "64", "--eval-images", "1",
                         "--patch-size", "32", "--ddp-steps", "2"])
    assert rc == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = result["sections"]
    assert result["ran_on_gpu"] is False and list(sections) == ["env", "tests", "train", "eval", "tiling", "ddp"]
    assert sections["env"]["status"] == "ok" and sections["env"]["cuda_available"] is False
    assert sections["tests"]["status"] == "skipped" and "CUDA" in sections["tests"]["reason"]
    assert sections["tiling"]["status"] == "skipped"
    runs = sections["train"]["runs"]
    for name in ("float32 nchw eager", "float32 channels_last eager", "bf16 nchw eager", "bf16 channels_last eager"):
        assert runs[name]["status"] == "ok" and runs[name]["images_per_s"] > 0, name
    assert runs["fp16 nchw eager"]["status"] == "skipped" and "CUDA" in runs["fp16 nchw eager"]["reason"]
    assert runs["float32 nchw compiled"]["status"] == "skipped"
    ratio = sections["train"]["bf16_over_float32"]["bf16 / float32, channels_last eager"]
    assert ratio == pytest.approx(runs["bf16 channels_last eager"]["images_per_s"]
                                  / runs["float32 channels_last eager"]["images_per_s"], rel=0.01)
    ev = sections["eval"]
    assert ev["status"] == "ok" and ev["images"] == 1 and ev["tlc_train_size"] == 32 and ev["device"] == "cpu"
    assert sections["ddp"]["status"] == "ok" and sections["ddp"]["backend"] == "gloo"
    assert len(sections["ddp"]["losses"]) == 2
    skipped = result["skipped"]
    assert any(s.startswith("ddp nccl") for s in skipped) and any(s.startswith("tiling") for s in skipped)
    report = (tmp_path / "gpu_check.txt").read_text()
    assert report.startswith("nafft GPU check: CPU only") and "skipped:" in report and "images/s" in report

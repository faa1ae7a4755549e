from pathlib import Path

import numpy as np
import pytest
import torch

from nafft.cli import main
from nafft.data.io import decode_image, image_to_tensor, read_image, write_image
from nafft.inference import Predictor, load_for_inference
from nafft.inference.deblur import OverwriteError, collect_inputs, plan_jobs
from tests.inference.conftest import save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", attention="eca", skip="fft"
    )


def rand_image(shape, seed):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_bad_file_is_one_line_and_the_rest_is_written(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    write_image(src / "good.png", rand_image((30, 37, 3), 0))
    (src / "bad.png").write_bytes(b"not a png at all")
    write_image(src / "sub" / "other.jpg", rand_image((21, 18, 3), 1))
    out = tmp_path / "out"
    code = main(["deblur", str(src), "-o", str(out), "--checkpoint", str(checkpoint), "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 1
    bad_lines = [line for line in err.splitlines() if "bad.png" in line and "error" in line]
    assert len(bad_lines) == 1 and "Traceback" not in err
    assert "nafft: error: " in bad_lines[0] and "not an image" in bad_lines[0]
    assert (out / "good.png").is_file() and (out / "sub" / "other.jpg").is_file()
    assert not (out / "bad.png").exists()
    assert read_image(out / "sub" / "other.jpg").rgb.shape == (21, 18, 3)


def test_output_is_the_model_prediction(tmp_path, checkpoint):
    rgb = rand_image((30, 37, 3), 2)
    write_image(tmp_path / "a.png", rgb)
    code = main(
        ["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint)]
    )
    assert code == 0
    loaded = load_for_inference(checkpoint)  # TLC on, train size 32 from the checkpoint
    assert loaded.tlc and loaded.train_size == 32 and loaded.train_size_source == "checkpoint"
    pred = Predictor(loaded.model, device="cpu", tile=0)(image_to_tensor(read_image(tmp_path / "a.png").rgb))
    expected = np.floor(np.clip(pred.permute(1, 2, 0).numpy(), 0, 1) * 255 + 0.5)
    written, _, _ = decode_image(tmp_path / "out" / "a.png")
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(written, decode_image(tmp_path / "a.png")[0])  # the model did change the image


def test_bit_depth_and_alpha_are_kept(tmp_path, checkpoint):
    src = tmp_path / "in"
    write_image(src / "deep.png", rand_image((33, 41, 3), 3), bit_depth=16)
    alpha = rand_image((20, 25), 4)
    write_image(src / "rgba.png", rand_image((20, 25, 3), 5), alpha=alpha)
    write_image(src / "deep_rgba.png", rand_image((19, 22, 3), 6), alpha=alpha[:19, :22], bit_depth=16)
    pytest.importorskip("tifffile")
    write_image(src / "deep.tif", rand_image((17, 23, 3), 7), bit_depth=16)
    out = tmp_path / "out"
    assert (
        main(
            [
                "deblur",
                str(src),
                "-o",
                str(out),
                "--checkpoint",
                str(checkpoint),
                "--tile",
                "16",
                "--overlap",
                "4",
            ]
        )
        == 0
    )
    for name in ("deep.png", "rgba.png", "deep_rgba.png", "deep.tif"):
        a_rgb, a_alpha, a_depth = decode_image(src / name)
        b_rgb, b_alpha, b_depth = decode_image(out / name)
        assert b_depth == a_depth and b_rgb.shape == a_rgb.shape and b_rgb.dtype == a_rgb.dtype, name
        assert (a_alpha is None) == (b_alpha is None), name
        if a_alpha is not None:
            assert np.array_equal(a_alpha, b_alpha), name  # alpha is carried over untouched
    deep = decode_image(out / "deep.png")[0]
    assert deep.dtype == np.uint16 and len(np.unique(deep)) > 256  # really 16-bit values, not 8-bit scaled up


def test_never_writes_over_an_input(tmp_path, checkpoint, capsys):
    write_image(tmp_path / "a.png", rand_image((16, 16, 3), 8))
    before = (tmp_path / "a.png").read_bytes()
    code = main(["deblur", str(tmp_path), "-o", str(tmp_path), "--checkpoint", str(checkpoint)])
    assert code == 2
    assert "refusing to write over the input" in capsys.readouterr().err
    assert (tmp_path / "a.png").read_bytes() == before
    with pytest.raises(OverwriteError):
        plan_jobs([(tmp_path / "a.png", Path("a.png"))], tmp_path)


def test_globs_missing_inputs_and_collisions(tmp_path):
    for sub in ("x", "y"):
        write_image(tmp_path / sub / "same.png", rand_image((8, 8, 3), 9))
    found, problems = collect_inputs(
        [str(tmp_path / "*" / "*.png"), str(tmp_path / "nope.png"), str(tmp_path / "*.bmp")]
    )
    assert len(found) == 2
    assert problems == [
        f"{tmp_path / 'nope.png'}: no such file or folder",
        f"{tmp_path / '*.bmp'}: no image files match",
    ]
    jobs, clashes = plan_jobs(found, tmp_path / "out")
    assert len(jobs) == 1 and len(clashes) == 1 and "already the output of" in clashes[0]


def test_checkpoint_is_required_with_a_pointer_to_official_weights(tmp_path, capsys):
    write_image(tmp_path / "a.png", rand_image((8, 8, 3), 10))
    assert main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint is required" in err and "github.com/megvii-research/NAFNet" in err
    assert "NAFNet-GoPro-width64.pth" in err and len(err.strip().splitlines()) == 1


def test_official_pth_defaults_to_tlc_256(tmp_path):
    from nafft.models import build_model

    model = build_model({"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)})
    torch.save({"params": model.state_dict()}, tmp_path / "official.pth")
    loaded = load_for_inference(tmp_path / "official.pth")
    assert loaded.tlc and loaded.train_size == 256 and loaded.train_size_source == "default"
    assert not load_for_inference(tmp_path / "official.pth", tlc=False).tlc

from pathlib import Path

import numpy as np
import pytest
import torch

from nafft.cli import main
from nafft.data.io import decode_image, image_to_tensor, read_image, write_image
from nafft.inference import Predictor, open_model
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
    opened = open_model(checkpoint, device="cpu")  # TLC on, train size 32 from the checkpoint
    assert opened.tlc and opened.train_size == 32 and opened.train_size_source == "checkpoint"
    pred = Predictor(opened, tile=0)(image_to_tensor(read_image(tmp_path / "a.png").rgb))
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


def test_without_bundled_weights_a_checkpoint_is_required(tmp_path, capsys, monkeypatch):
    import nafft.weights

    monkeypatch.setattr(nafft.weights, "_folder", lambda: tmp_path / "no_weights")
    write_image(tmp_path / "a.png", rand_image((8, 8, 3), 10))
    assert main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint is required" in err and "github.com/megvii-research/NAFNet" in err
    assert "NAFNet-GoPro-width64.pth" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_deblur_and_eval_fall_back_to_the_bundled_default_model(tmp_path, capsys, monkeypatch):
    import json

    import nafft.weights
    from nafft.models import build_model, save_model

    folder = tmp_path / "weights"
    model = build_model({"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)})
    card = {"summary": "tiny test model", "scores": {}}
    save_model(model, folder / "nafft-photo.safetensors", {nafft.weights.CARD_KEY: json.dumps(card)})
    monkeypatch.setattr(nafft.weights, "_folder", lambda: folder)
    write_image(tmp_path / "in" / "a.png", rand_image((20, 24, 3), 11))
    assert main(["deblur", str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "out.png")]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("no --checkpoint: using the bundled default model nafft-photo (tiny test "
                                   "model); see `nafft models`")
    predictor = Predictor(open_model(folder / "nafft-photo.safetensors", device="cpu"), tile=0)
    pred = predictor(image_to_tensor(read_image(tmp_path / "in" / "a.png").rgb))
    expected = np.floor(np.clip(pred.permute(1, 2, 0).numpy(), 0, 1) * 255 + 0.5)
    written, _, _ = decode_image(tmp_path / "out.png")
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1  # the default model's output
    pairs = tmp_path / "pairs"
    write_image(pairs / "blur" / "p.png", rand_image((20, 24, 3), 12))
    write_image(pairs / "sharp" / "p.png", rand_image((20, 24, 3), 13))
    assert main(["eval", "--data", str(pairs), "-o", str(tmp_path / "ev")]) == 0
    assert capsys.readouterr().err.splitlines()[0].startswith("no --checkpoint: using the bundled default model")
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["settings"]["checkpoint"] == str(folder / "nafft-photo.safetensors")
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "nafft-photo (default)" in listing and "tiny test model" in listing


def test_official_pth_defaults_to_tlc_256(tmp_path):
    from nafft.models import build_model

    model = build_model({"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)})
    torch.save({"params": model.state_dict()}, tmp_path / "official.pth")
    opened = open_model(tmp_path / "official.pth", device="cpu")
    assert opened.tlc and opened.train_size == 256 and opened.train_size_source == "default"
    assert opened.tlc_window == (384, 384) and opened.name == "official" and opened.card == {}
    assert not open_model(tmp_path / "official.pth", device="cpu", tlc=False).tlc


def _run_cli(args, timeout=240):
    """`nafft ARGS` in a child process (the way a user runs it) under a timeout; (exit code, stdout, stderr)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "nafft", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("tile", ["1", "15", "16"])
def test_tiny_tiles_are_refused_at_once_instead_of_hanging(tmp_path, tile):
    """`nafft deblur scan.png --tile 16` never returned with a 16-multiple model; now one line before any work."""
    from nafft.models import build_model, save_model

    write_image(tmp_path / "scan.png", rand_image((237, 201, 3), 11), bit_depth=16)
    ckpt = save_model(build_model({"width": 8, "enc_blocks": (1, 1, 1, 1), "middle_blocks": 1,
                                   "dec_blocks": (1, 1, 1, 1)}), tmp_path / "m.safetensors")  # multiple 16
    code, out, err = _run_cli(["deblur", str(tmp_path / "scan.png"), "-o", str(tmp_path / "dt"), "--checkpoint",
                               str(ckpt), "--tile", tile, "--device", "cpu"])
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"nafft: error: --tile {tile}: too small for this model; use 0 (never tile) or a tile of at least 64 px "
        "(4x its padding multiple 16)"
    )
    assert not (tmp_path / "dt").exists()


@pytest.mark.parametrize(
    "option,value,expected",
    [
        ("--device", "gpu", "argument --device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("--memory-budget", "-1", "argument --memory-budget: expected a number > 0, got -1"),
        ("--memory-budget", "0", "argument --memory-budget: expected a number > 0, got 0"),
        ("--threads", "0", "argument --threads: expected an integer >= 1, got 0"),
        ("--tile", "-3", "argument --tile: expected an integer >= 0, got -3"),
        ("--overlap", "-1", "argument --overlap: expected an integer >= 0, got -1"),
    ],
)
def test_out_of_range_options_are_one_line_errors(tmp_path, checkpoint, capsys, option, value, expected):
    write_image(tmp_path / "a.png", rand_image((8, 8, 3), 12))
    with pytest.raises(SystemExit) as exit_info:
        main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--checkpoint", str(checkpoint),
              option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"nafft deblur: error: {expected}" and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_overlap_above_a_third_of_the_tile_is_refused_not_shrunk(tmp_path, checkpoint, capsys):
    write_image(tmp_path / "a.png", rand_image((40, 40, 3), 13))
    code = main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--checkpoint", str(checkpoint),
                 "--tile", "24", "--overlap", "12"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "nafft: error: --overlap 12 is more than a third of --tile 24; use --overlap 0..8 or a tile of at least 36 px"
    )


def test_output_file_name_for_a_single_input(tmp_path, checkpoint, capsys):
    write_image(tmp_path / "photo.png", rand_image((20, 24, 3), 14))
    assert main(["deblur", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.png"), "--checkpoint",
                 str(checkpoint)]) == 0
    assert (tmp_path / "out.png").is_file() and not (tmp_path / "out.png").is_dir()
    assert decode_image(tmp_path / "out.png")[0].shape == (20, 24, 3)
    assert f"into {tmp_path / 'out.png'}" in capsys.readouterr().out
    # another suffix converts the format; several inputs cannot go to one file
    assert main(["deblur", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.jpg"), "--checkpoint",
                 str(checkpoint)]) == 0
    assert PIL_format(tmp_path / "out.jpg") == "JPEG"
    write_image(tmp_path / "second.png", rand_image((20, 24, 3), 15))
    code = main(["deblur", str(tmp_path / "photo.png"), str(tmp_path / "second.png"), "-o", str(tmp_path / "x.png"),
                 "--checkpoint", str(checkpoint)])
    assert code == 2 and not (tmp_path / "x.png").exists()
    assert "names one image file, but 2 images are given" in capsys.readouterr().err


def PIL_format(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.format


def test_unsupported_formats_are_refused_before_the_model_runs(tmp_path, checkpoint, capsys):
    from PIL import Image

    Image.fromarray((rand_image((12, 12, 3), 16) * 255).astype(np.uint8)).save(tmp_path / "anim.gif")
    write_image(tmp_path / "ok.png", rand_image((12, 12, 3), 17))
    code = main(["deblur", str(tmp_path / "anim.gif"), str(tmp_path / "ok.png"), "-o", str(tmp_path / "o"),
                 "--checkpoint", str(checkpoint)])
    captured = capsys.readouterr()
    assert code == 1
    assert f"nafft: error: {tmp_path / 'anim.gif'}: not an image type nafft reads (suffix '.gif')" in captured.err
    assert (tmp_path / "o" / "ok.png").is_file() and not (tmp_path / "o" / "anim.gif").exists()
    assert "deblurred 1 of 1 images" in captured.out and "1 input problem" in captured.out
    code = main(["deblur", str(tmp_path / "ok.png"), "-o", str(tmp_path / "o.gif"), "--checkpoint", str(checkpoint)])
    assert code == 2 and "nafft cannot write '.gif' images" in capsys.readouterr().err
    # a 16-bit input into a JPEG output: refused before the model runs (the prediction would be thrown away)
    write_image(tmp_path / "deep.png", rand_image((12, 12, 3), 18), bit_depth=16)
    calls = []
    from nafft.inference.deblur import Job, deblur_file

    result = deblur_file(Job(tmp_path / "deep.png", tmp_path / "deep.jpg"), lambda x: calls.append(x) or x)
    assert calls == [] and "JPEG cannot store 16 bits per channel" in result.error


def test_two_folders_of_the_same_layout_keep_their_names(tmp_path, checkpoint, capsys):
    for folder in ("p2", "photos"):
        for i in range(3):
            write_image(tmp_path / folder / f"img{i}.png", rand_image((10, 12, 3), 20 + i))
    code = main(["deblur", str(tmp_path / "p2"), str(tmp_path / "photos"), "-o", str(tmp_path / "d"),
                 "--checkpoint", str(checkpoint)])
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(str(p.relative_to(tmp_path / "d")) for p in (tmp_path / "d").rglob("*.png")) == [
        f"{folder}/img{i}.png" for folder in ("p2", "photos") for i in range(3)
    ]
    assert out.strip() == f"deblurred 6 of 6 images into {tmp_path / 'd'}"


def test_jpeg_output_keeps_the_input_quality(tmp_path, checkpoint):
    from PIL import Image

    from nafft.data.io import jpeg_options

    rgb = (rand_image((64, 64, 3), 30) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.jpg", quality=60)  # Pillow's default subsampling: 4:2:0
    assert jpeg_options(tmp_path / "in.jpg") == {"quality": 60, "subsampling": 2}
    assert main(["deblur", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "o"), "--checkpoint", str(checkpoint)]) == 0
    assert jpeg_options(tmp_path / "o" / "in.jpg") == {"quality": 60, "subsampling": 2}  # was 95, 4:4:4
    assert jpeg_options(tmp_path / "in.jpg") != jpeg_options(write_image(tmp_path / "q95.jpg", rgb))

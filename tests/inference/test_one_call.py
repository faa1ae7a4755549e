"""nafft.deblur(image): every kind of input comes back as the same kind, with the pixels `nafft deblur` writes."""

import numpy as np
import pytest
import torch
from PIL import Image

import nafft
from nafft.cli import main
from nafft.data.io import ImageReadError, decode_image, quantize, to_float, write_image
from nafft.errors import UserError
from nafft.inference import one_call
from tests.inference.conftest import save_tiny_checkpoint

FILES = ("rgb.png", "deep.png", "gray.png", "gray16.png", "rgba.png", "la.png", "photo.jpg", "turned.jpg")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", attention="eca")


@pytest.fixture(scope="module")
def cli_outputs(tmp_path_factory, checkpoint):
    """Input files of every layout, and what `nafft deblur` wrote for each: {name: (input path, output pixels)}."""
    folder = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(0)
    write_image(folder / "rgb.png", rng.random((30, 37, 3)))
    write_image(folder / "deep.png", rng.random((21, 19, 3)), bit_depth=16)
    write_image(folder / "gray.png", rng.random((18, 23)))
    write_image(folder / "gray16.png", rng.random((18, 23)), bit_depth=16)
    write_image(folder / "rgba.png", rng.random((17, 20, 3)), alpha=rng.random((17, 20)))
    write_image(folder / "la.png", rng.random((19, 16)), alpha=rng.random((19, 16)))
    write_image(folder / "photo.jpg", rng.random((24, 33, 3)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed turned a quarter clockwise
    Image.fromarray((rng.random((20, 28, 3)) * 255).astype(np.uint8)).save(folder / "turned.jpg", exif=exif)
    out = tmp_path_factory.mktemp("out")
    assert main(["deblur", str(folder), "-o", str(out), "--checkpoint", str(checkpoint)]) == 0
    for name in ("photo.jpg", "turned.jpg"):  # the pixels before JPEG's own lossy coding: written as PNG
        target = out / f"{name}.png"
        assert main(["deblur", str(folder / name), "-o", str(target), "--checkpoint", str(checkpoint)]) == 0
    outputs = {}
    for name in FILES:
        rgb, alpha, _ = decode_image(out / (f"{name}.png" if name.endswith(".jpg") else name))
        gray = name.startswith(("gray", "la"))
        colour = rgb[..., 0] if gray else rgb
        outputs[name] = (folder / name, colour if alpha is None else np.dstack([colour, alpha]))
    return outputs


def test_a_path_gives_the_cli_pixels_as_an_array(cli_outputs, checkpoint):
    for name, (path, expected) in cli_outputs.items():
        result = nafft.deblur(path, model=checkpoint)
        assert result.dtype == expected.dtype and np.array_equal(result, expected), name
    assert nafft.deblur(str(cli_outputs["turned.jpg"][0]), model=checkpoint).shape == (28, 20, 3)  # upright


def test_arrays_keep_shape_and_dtype_and_equal_the_cli(cli_outputs, checkpoint):
    for name, (path, expected) in cli_outputs.items():
        rgb, alpha, _ = decode_image(path)
        gray = name.startswith(("gray", "la"))
        colour = rgb[..., 0] if gray else rgb
        array = colour if alpha is None else np.dstack([colour, alpha])
        result = nafft.deblur(array, model=checkpoint)
        assert result.shape == array.shape and result.dtype == array.dtype, name
        assert np.array_equal(result, expected), name
        if alpha is not None:
            assert np.array_equal(result[..., -1], alpha), name  # alpha untouched
        floats = nafft.deblur(to_float(array), model=checkpoint)  # floats in [0, 1]: not rounded, same values
        assert floats.dtype == np.float32 and floats.shape == array.shape and 0 <= floats.min() <= floats.max() <= 1
        depth = 16 if array.dtype == np.uint16 else 8
        assert np.array_equal(quantize(floats, depth), expected), name


def test_pil_images_keep_mode_size_and_info(cli_outputs, checkpoint):
    for name in ("rgb.png", "gray.png", "gray16.png", "rgba.png", "la.png", "photo.jpg"):
        path, expected = cli_outputs[name]
        with Image.open(path) as image:
            image.load()
            image.info["comment"] = "kept"
            result = nafft.deblur(image, model=checkpoint)
        assert isinstance(result, Image.Image) and result.mode == image.mode and result.size == image.size, name
        assert np.array_equal(np.asarray(result), expected), name
        assert result.info["comment"] == "kept"
    palette = Image.open(cli_outputs["rgb.png"][0]).convert("P")
    assert nafft.deblur(palette, model=checkpoint).mode == "RGB"  # a palette cannot hold a restoration


def test_tensors_keep_shape_dtype_and_equal_the_cli(cli_outputs, checkpoint):
    path, expected = cli_outputs["rgb.png"]
    rgb = decode_image(path)[0]
    chw = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    result = nafft.deblur(chw, model=checkpoint)
    assert result.dtype == torch.uint8 and result.shape == chw.shape
    assert np.array_equal(result.permute(1, 2, 0).numpy(), expected)
    floats = nafft.deblur(chw.float() / 255, model=checkpoint)
    assert floats.dtype == torch.float32 and np.array_equal(quantize(floats.permute(1, 2, 0).numpy()), expected)
    batch = torch.stack([chw, chw.flip(-1)]).float().div(255).requires_grad_()
    out = nafft.deblur(batch, model=checkpoint)
    assert out.shape == batch.shape and not out.requires_grad
    assert np.array_equal(quantize(out[0].permute(1, 2, 0).numpy()), expected)
    gray_path, gray_expected = cli_outputs["gray.png"]
    gray = torch.from_numpy(decode_image(gray_path)[0][..., :1].copy()).permute(2, 0, 1)  # (1, H, W)
    assert np.array_equal(nafft.deblur(gray, model=checkpoint)[0].numpy(), gray_expected)


def test_strength_zero_gives_the_input_back(cli_outputs, checkpoint):
    rgb, alpha, _ = decode_image(cli_outputs["rgba.png"][0])
    array = np.dstack([rgb, alpha])
    assert np.array_equal(nafft.deblur(array, model=checkpoint, strength=0), array)
    floats = np.random.default_rng(3).random((12, 14, 3)).astype(np.float32)
    assert np.array_equal(nafft.deblur(floats, model=checkpoint, strength=0.0), floats)
    half = nafft.deblur(array, model=checkpoint, strength=0.5)
    assert not np.array_equal(half, array) and not np.array_equal(half, cli_outputs["rgba.png"][1])


@pytest.mark.parametrize("image,message", [
    ([[0, 1], [1, 0]], "cannot deblur a list"),
    (np.zeros((8, 8, 3), np.int32), "of int32 pixels"),
    (np.full((8, 8, 3), 200.0), "divide by 255"),
    (np.full((8, 8, 3), np.nan), "contain NaN"),
    (np.zeros((8, 8, 5), np.uint8), "of shape (8, 8, 5)"),
    (torch.zeros(2, 8, 8), "of shape (2, 8, 8)"),
])
def test_unsupported_images_are_one_line_errors(checkpoint, image, message):
    with pytest.raises(UserError) as info:
        nafft.deblur(image, model=checkpoint)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_file_and_a_preset_are_refused(tmp_path, checkpoint):
    with pytest.raises(ImageReadError, match="missing.png: no such file"):
        nafft.deblur(tmp_path / "missing.png", model=checkpoint)
    with pytest.raises(UserError, match="preset with untrained weights"):
        nafft.deblur(np.zeros((8, 8, 3), np.uint8), model="nafnet-small")


def test_a_model_file_is_opened_once(checkpoint, monkeypatch):
    one_call._open_cached.cache_clear()
    opened = []
    real = one_call.open_model
    monkeypatch.setattr(one_call, "open_model", lambda *a, **k: opened.append(a) or real(*a, **k))
    image = np.zeros((16, 16, 3), np.uint8)
    nafft.deblur(image, model=checkpoint)
    nafft.deblur(image, model=str(checkpoint))
    assert len(opened) == 1
    nafft.deblur(image, model=checkpoint, tlc=False)  # another configuration is another opened model
    assert len(opened) == 2


def test_the_default_model_is_ready_for_inference_and_equals_the_cli(tmp_path):
    opened = nafft.load_default_model()
    assert not any(m.training for m in opened.network.modules())
    assert not any(p.requires_grad for p in opened.network.parameters())
    x = torch.rand(1, 3, 32, 40)
    assert opened.network(x).numpy().shape == (1, 3, 32, 40)  # no torch.no_grad() needed
    rgb = (np.random.default_rng(4).random((40, 52, 3)) * 255).astype(np.uint8)
    write_image(tmp_path / "a.png", rgb)
    assert main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    expected = decode_image(tmp_path / "out" / "a.png")[0]
    assert np.array_equal(nafft.deblur(rgb, device="cpu"), expected)
    assert np.array_equal(nafft.deblur(rgb, model=opened), expected)

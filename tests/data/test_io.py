import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageOps

from nafft.data.io import (
    ImageReadError,
    ImageWriteError,
    decode_image,
    encode_png16,
    image_size,
    image_to_tensor,
    list_images,
    quantize,
    read_image,
    tensor_to_image,
    write_image,
)
from nafft.errors import UserError
from tests.data.pngraw import write_raw_png16


def _rng_image(shape, dtype=np.uint8, seed=0):
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(0, info.max + 1, size=shape, dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_8bit_round_trip(tmp_path, suffix):
    pixels = _rng_image((30, 37, 3))
    path = write_image(tmp_path / f"a{suffix}", pixels)
    image = read_image(path)
    assert image.bit_depth == 8 and image.alpha is None and image.path == path
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (30, 37, 3)
    np.testing.assert_array_equal(np.rint(image.rgb * 255).astype(np.uint8), pixels)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_lossy_formats_read_back_close(tmp_path, suffix):
    y, x = np.mgrid[0:32, 0:40]
    rgb = np.stack([y / 31, x / 39, (x + y) / 70], axis=-1).astype(np.float32)
    image = read_image(write_image(tmp_path / f"a{suffix}", rgb))
    assert image.rgb.shape == (32, 40, 3) and image.bit_depth == 8
    assert np.abs(image.rgb - rgb).mean() < 0.02


def test_float_write_quantizes_and_reads_back_exactly(tmp_path):
    rgb = np.random.default_rng(1).random((9, 11, 3)).astype(np.float32)
    back = read_image(write_image(tmp_path / "f.png", rgb)).rgb
    np.testing.assert_array_equal(back, np.round(rgb * 255).astype(np.float32) / 255)
    assert np.abs(back - rgb).max() <= 0.5 / 255 + 1e-7


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_round_trip_is_exact(tmp_path, channels, suffix):
    pixels = _rng_image((13, 21, channels), np.uint16, seed=channels)
    path = write_image(tmp_path / f"a{suffix}", pixels[..., :3], alpha=pixels[..., 3] if channels == 4 else None,
                       bit_depth=16)
    rgb, alpha, depth = decode_image(path)
    assert depth == 16 and rgb.dtype == np.uint16
    np.testing.assert_array_equal(rgb, pixels[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(alpha, pixels[..., 3])
    else:
        assert alpha is None
    image = read_image(path)
    np.testing.assert_array_equal(image.rgb, pixels[..., :3].astype(np.float32) / 65535)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_from_independent_writer(tmp_path, channels, interlace):
    # Pillow alone would truncate 16-bit colour PNGs to their high bytes; every bit must survive.
    pixels = _rng_image((11, 19, channels), np.uint16, seed=10 + channels)
    path = tmp_path / "raw.png"
    write_raw_png16(path, pixels, interlace=interlace)
    rgb, alpha, depth = decode_image(path)
    assert depth == 16
    colour = pixels[..., :1] if channels in (1, 2) else pixels[..., :3]
    np.testing.assert_array_equal(rgb, np.broadcast_to(colour, rgb.shape))
    if channels in (2, 4):
        np.testing.assert_array_equal(alpha, pixels[..., -1])
    else:
        assert alpha is None


def test_our_16bit_png_encoder_is_read_by_pillow(tmp_path):
    pixels = _rng_image((17, 23, 3), np.uint16, seed=3)
    (tmp_path / "e.png").write_bytes(encode_png16(pixels))
    with PILImage.open(tmp_path / "e.png") as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), (pixels >> 8).astype(np.uint8))


def test_16bit_tiff_matches_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    pixels = _rng_image((8, 10, 3), np.uint16, seed=4)
    tifffile.imwrite(tmp_path / "big.tif", pixels.byteswap().view(pixels.dtype.newbyteorder()), photometric="rgb")
    rgb, alpha, depth = decode_image(tmp_path / "big.tif")
    assert depth == 16 and alpha is None
    np.testing.assert_array_equal(rgb, pixels)
    np.testing.assert_array_equal(tifffile.imread(write_image(tmp_path / "ours.tif", pixels, bit_depth=16)), pixels)


def test_16bit_grayscale_png(tmp_path):
    gray = _rng_image((6, 9), np.uint16, seed=5)
    PILImage.fromarray(gray).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.bit_depth == 16 and image.alpha is None
    for c in range(3):
        np.testing.assert_array_equal(image.rgb[..., c], gray.astype(np.float32) / 65535)


def test_rgba_8bit_keeps_alpha(tmp_path):
    pixels = _rng_image((10, 12, 4), seed=6)
    for suffix in (".png", ".webp", ".tif"):
        path = write_image(tmp_path / f"a{suffix}", pixels[..., :3], alpha=pixels[..., 3])
        rgb, alpha, depth = decode_image(path)
        assert depth == 8
        if suffix == ".webp":
            continue  # lossy colour; alpha presence checked below
        np.testing.assert_array_equal(rgb, pixels[..., :3])
        np.testing.assert_array_equal(alpha, pixels[..., 3])
    assert read_image(tmp_path / "a.webp").alpha is not None


def test_grayscale_and_palette_become_rgb(tmp_path):
    gray = _rng_image((7, 5), seed=7)
    PILImage.fromarray(gray, "L").save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.rgb.shape == (7, 5, 3) and image.alpha is None
    np.testing.assert_array_equal(image.rgb[..., 1], gray / np.float32(255))
    palette = PILImage.fromarray(gray, "L").convert("P")
    palette.info["transparency"] = int(palette.getpixel((0, 0)))
    palette.save(tmp_path / "p.png", transparency=palette.info["transparency"])
    image = read_image(tmp_path / "p.png")
    assert image.alpha is not None and image.alpha[0, 0] == 0.0 and image.rgb.shape == (7, 5, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_matches_pillow(tmp_path, orientation, suffix):
    y, x = np.mgrid[0:12, 0:20]
    pixels = np.stack([y * 20, x * 12, (x * y) % 256], axis=-1).astype(np.uint8)
    im = PILImage.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{suffix}"
    im.save(path, exif=exif.tobytes(), **({"quality": 100} if suffix == ".jpg" else {}))
    with PILImage.open(path) as reference:
        expected = np.asarray(ImageOps.exif_transpose(reference).convert("RGB"))
    rgb, _, _ = decode_image(path)
    np.testing.assert_array_equal(rgb, expected)
    assert image_size(path) == expected.shape[:2]
    assert (expected.shape[:2] == (20, 12)) == (orientation >= 5)


def test_unreadable_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(bad)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(write_image(tmp_path / "ok.png", _rng_image((64, 64, 3))).read_bytes()[:300])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(truncated)
    with pytest.raises(ImageReadError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="broken.png"):
        image_size(bad)
    assert issubclass(ImageReadError, UserError)


def test_write_errors(tmp_path):
    rgb = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ImageWriteError, match="x.jpg.*16 bits"):
        write_image(tmp_path / "x.jpg", rgb, bit_depth=16)
    with pytest.raises(ImageWriteError, match="alpha"):
        write_image(tmp_path / "x.jpg", rgb, alpha=np.ones((4, 4), np.float32))
    with pytest.raises(ImageWriteError, match="x.gif"):
        write_image(tmp_path / "x.gif", rgb)


def test_write_is_atomic_and_overwrites(tmp_path):
    path = write_image(tmp_path / "sub" / "a.png", np.zeros((4, 4, 3), np.float32))
    write_image(path, np.ones((4, 4, 3), np.float32))
    assert read_image(path).rgb.min() == 1.0
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.png"]


def test_list_images(tmp_path):
    for name in ["b.PNG", "a.jpg", ".hidden.png", "notes.txt", "c.tiff", "sub/d.webp", ".tmp/e.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.tiff"]
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)] == [
        "a.jpg", "b.PNG", "c.tiff", "sub/d.webp"]
    with pytest.raises(ImageReadError, match="not a folder"):
        list_images(tmp_path / "nope")


def test_tensor_helpers_round_trip():
    rgb = np.random.default_rng(2).random((5, 7, 3)).astype(np.float32)
    tensor = image_to_tensor(rgb)
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    assert tensor[1, 2, 3].item() == rgb[2, 3, 1]
    np.testing.assert_array_equal(tensor_to_image(tensor), rgb)
    np.testing.assert_array_equal(tensor_to_image(tensor[None]), rgb)
    assert image_to_tensor(np.full((2, 2, 3), 255, np.uint8)).max().item() == 1.0


def _move_exif_after_pixels(data: bytes) -> bytes:
    """Reorder PNG chunks so that eXIf follows the IDAT chunks (allowed by the PNG specification)."""
    import struct

    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append(data[pos:pos + 12 + length])
        pos += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    return data[:8] + b"".join(rest[:-1] + exif + rest[-1:])


def test_decoding_only_the_top_rows(tmp_path):
    pixels = _rng_image((40, 30, 3), seed=8)
    deep = _rng_image((40, 30, 4), np.uint16, seed=9)
    cases = {
        "a.png": (write_image(tmp_path / "a.png", pixels), pixels, None),
        "a.jpg": (write_image(tmp_path / "a.jpg", pixels), None, None),
        "d.png": (write_image(tmp_path / "d.png", deep[..., :3], alpha=deep[..., 3], bit_depth=16),
                  deep[..., :3], deep[..., 3]),
    }
    write_raw_png16(tmp_path / "i.png", deep, interlace=True)
    cases["i.png"] = (tmp_path / "i.png", deep[..., :3], deep[..., 3])
    for path, rgb, alpha in cases.values():
        full_rgb, full_alpha, depth = decode_image(path)
        for rows in (1, 17, 40, 99):
            top_rgb, top_alpha, top_depth = decode_image(path, rows=rows)
            assert top_depth == depth and top_rgb.shape == (min(rows, 40), 30, 3)
            np.testing.assert_array_equal(top_rgb, full_rgb[:rows])
            if rgb is not None:
                np.testing.assert_array_equal(top_rgb, rgb[:rows])
            if alpha is not None:
                np.testing.assert_array_equal(top_alpha, alpha[:rows])


def test_top_rows_of_a_png_turned_by_a_trailing_exif_chunk(tmp_path):
    y, x = np.mgrid[0:12, 0:20]
    pixels = np.stack([y * 20, x * 12, (x * y) % 256], axis=-1).astype(np.uint8)
    im = PILImage.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    (tmp_path / "late.png").write_bytes(_move_exif_after_pixels((tmp_path / "o.png").read_bytes()))
    with PILImage.open(tmp_path / "late.png") as probe:
        assert "exif" not in probe.info  # not visible before the pixels are read
    expected = np.rot90(pixels, k=-1)
    np.testing.assert_array_equal(decode_image(tmp_path / "late.png")[0], expected)
    np.testing.assert_array_equal(decode_image(tmp_path / "late.png", rows=5)[0], expected[:5])


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_quantize_in_place_gives_the_same_pixels_and_reuses_the_input(bit_depth):
    values = np.random.default_rng(3).uniform(-0.2, 1.2, size=(9, 11, 3)).astype(np.float32)
    values[0, 0] = [0.5 / 255, 1.5 / 255, 254.5 / 255]  # halfway cases
    work = values.transpose(2, 0, 1).copy().transpose(1, 2, 0)  # a strided view, as deblur passes it
    got = quantize(work, bit_depth, in_place=True)
    want = quantize(values, bit_depth)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    scale = 65535.0 if bit_depth == 16 else 255.0
    assert np.array_equal(work, want.astype(np.float32))  # the float input now holds the rounded values
    assert want.max() == scale and want.min() == 0


def test_saved_images_and_metrics_round_alike_half_to_even():
    """io.quantize rounded halves up and metrics.to_uint8 to even, so a saved output and the image `nafft eval`
    scored could differ by one level; now both are one function."""
    from nafft.metrics import to_uint8

    levels = np.arange(255)
    halves = ((levels + 0.5) / 255).astype(np.float32)
    exact = halves * np.float32(255) == levels + 0.5  # those whose product in float32 is exactly k + 0.5
    assert exact.sum() > 50
    values = halves[exact].reshape(1, -1, 1).repeat(3, axis=2)
    want = (levels[exact] + (levels[exact] % 2)).reshape(1, -1, 1).repeat(3, axis=2)  # half to even
    assert np.array_equal(quantize(values), want)
    assert np.array_equal(to_uint8(values), want)
    assert np.array_equal(to_uint8(torch.from_numpy(values.transpose(2, 0, 1).copy())), want)
    assert np.array_equal(quantize(values.copy(), in_place=True), want)

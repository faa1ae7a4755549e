"""Metadata travels from the file read to the file written: ICC profile, EXIF (orientation applied once, tagged 1),
XMP and PNG text, for every format nafft writes; grayscale stays grayscale."""

import functools
import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms

from nafft.data.io import ImageMetadata, ImageReadError, decode_image, decode_with_metadata, write_image

ORIENTATION, EXIF_IFD, GPS_IFD, DATE_TAKEN, MAKE, MODEL = 0x0112, 0x8769, 0x8825, 0x9003, 0x010F, 0x0110
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'tiff:Orientation="6" dc:format="image/jpeg"/></rdf:RDF></x:xmpmeta>'
)


@functools.cache
def srgb_icc() -> bytes:
    """An sRGB profile, made once: the profile's header holds the second it was made."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gray_icc() -> bytes:
    """A gray profile: sRGB's header with the colour space field set to GRAY (what the writers check)."""
    icc = bytearray(srgb_icc())
    icc[16:20] = b"GRAY"
    return bytes(icc)


def camera_exif(orientation: int = 6) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[MAKE] = "NaffCam"
    exif[MODEL] = "Model 7"
    exif[ORIENTATION] = orientation
    exif_ifd = exif.get_ifd(EXIF_IFD)
    exif_ifd[DATE_TAKEN] = "2024:05:06 07:08:09"
    exif.get_ifd(GPS_IFD)[2] = (48.0, 51.0, 30.0)  # GPSLatitude
    return exif


@pytest.fixture
def camera_jpeg(tmp_path):
    """A 40x24 (W x H) JPEG from a camera held upright: stored sideways, EXIF orientation 6, ICC, XMP."""
    rng = np.random.default_rng(0)
    stored = (rng.random((24, 40, 3)) * 255).astype(np.uint8)
    stored[:4, :8] = 255  # a marker in the stored top-left corner
    path = tmp_path / "camera.jpg"
    PILImage.fromarray(stored).save(path, quality=95, icc_profile=srgb_icc(), exif=camera_exif(), xmp=XMP)
    return path


def read_back(path) -> tuple[PILImage.Exif, dict]:
    with PILImage.open(path) as im:
        im.load()
        return im.getexif(), dict(im.info)


def test_camera_jpeg_is_read_upright_with_its_metadata(camera_jpeg):
    rgb, alpha, bit_depth, meta = decode_with_metadata(camera_jpeg)
    assert rgb.shape == (40, 24, 3) and alpha is None and bit_depth == 8  # turned upright
    assert rgb[:8, -4:].min() > 200  # orientation 6: the stored top-left corner is now top-right
    assert meta.icc_profile == srgb_icc() and not meta.gray
    exif = PILImage.Exif()
    exif.load(meta.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "NaffCam"
    assert exif.get_ifd(EXIF_IFD)[DATE_TAKEN] == "2024:05:06 07:08:09"
    assert b'tiff:Orientation="1"' in meta.xmp and b'dc:format="image/jpeg"' in meta.xmp


@pytest.mark.parametrize(
    "name, bit_depth",
    [("out.jpg", 8), ("out.png", 8), ("out.png", 16), ("out.webp", 8), ("out.tif", 8), ("out.tif", 16)],
)
def test_metadata_is_written_and_orientation_is_applied_once(tmp_path, camera_jpeg, name, bit_depth):
    rgb, _, _, meta = decode_with_metadata(camera_jpeg)
    pixels = rgb.astype(np.uint16) * 257 if bit_depth == 16 else rgb
    out = write_image(tmp_path / name, pixels, bit_depth=bit_depth, metadata=meta)
    exif, info = read_back(out)
    assert info.get("icc_profile") == srgb_icc()
    assert exif.get(ORIENTATION) == 1 and exif.get(MAKE) == "NaffCam" and exif.get(MODEL) == "Model 7"
    assert exif.get_ifd(EXIF_IFD).get(DATE_TAKEN) == "2024:05:06 07:08:09"
    assert exif.get_ifd(GPS_IFD).get(2) == (48.0, 51.0, 30.0)
    xmp = info.get("xmp")
    xmp = xmp.encode() if isinstance(xmp, str) else xmp
    assert xmp is not None and b'tiff:Orientation="1"' in xmp and b'dc:format="image/jpeg"' in xmp
    # read again, the upright pixels stay upright (not turned a second time)
    again, _, depth, _ = decode_with_metadata(out)
    assert again.shape == rgb.shape and depth == bit_depth
    if name != "out.jpg" and name != "out.webp":  # lossless formats give the samples back
        np.testing.assert_array_equal(again, pixels)


def test_bmp_carries_no_metadata_but_is_written(tmp_path, camera_jpeg):
    rgb, _, _, meta = decode_with_metadata(camera_jpeg)
    out = write_image(tmp_path / "out.bmp", rgb, metadata=meta)
    np.testing.assert_array_equal(decode_image(out)[0], rgb)


def test_png_text_travels_into_png(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Title", "Harbour at dawn")
    info.add_itxt("Description", "Hafen im Morgengrauen, \u6e2f")
    info.add_text("Software", "scanner 2.1", zip=True)
    src = tmp_path / "scan.png"
    PILImage.fromarray(np.full((9, 11, 3), 100, np.uint8)).save(src, pnginfo=info)
    rgb, _, _, meta = decode_with_metadata(src)
    assert dict(meta.text) == {"Title": "Harbour at dawn", "Description": "Hafen im Morgengrauen, \u6e2f",
                               "Software": "scanner 2.1"}
    for bit_depth in (8, 16):
        out = write_image(tmp_path / f"out{bit_depth}.png", rgb.astype(np.uint16) * 257 if bit_depth == 16 else rgb,
                          bit_depth=bit_depth, metadata=meta)
        with PILImage.open(out) as im:
            im.load()
            assert dict(im.text) == dict(meta.text)


def test_exif_of_a_tiff_leaves_its_storage_tags_behind(tmp_path, camera_jpeg):
    """A TIFF's first IFD holds strip offsets and sizes beside Make and Model: only the latter travel."""
    rgb, _, _, meta = decode_with_metadata(camera_jpeg)
    tif = write_image(tmp_path / "a.tif", rgb, metadata=meta)
    _, _, _, tif_meta = decode_with_metadata(tif)
    exif = PILImage.Exif()
    exif.load(tif_meta.exif)
    assert exif[MAKE] == "NaffCam" and not {256, 257, 273, 279, 259} & set(exif)
    out = write_image(tmp_path / "b.jpg", rgb, metadata=tif_meta)
    assert read_back(out)[0].get(MODEL) == "Model 7"


@pytest.mark.parametrize("name", ["g.png", "g.jpg", "g.tif", "g.bmp", "g.webp"])
def test_gray_is_written_gray_with_its_profile(tmp_path, name):
    gray = np.random.default_rng(1).integers(0, 256, (13, 17), dtype=np.uint8)
    meta = ImageMetadata(icc_profile=gray_icc(), gray=True)
    out = write_image(tmp_path / name, gray, metadata=meta)
    with PILImage.open(out) as im:
        if name == "g.webp":  # WebP has no gray mode: equal channels
            assert im.mode == "RGB"
        else:
            assert im.mode in ("L", "P") and (im.mode == "L" or im.palette.mode == "RGB")
        has_profile = "icc_profile" in im.info
    assert has_profile == (name not in ("g.bmp", "g.webp"))  # a gray profile on RGB WebP pixels would lie
    rgb, _, _, back = decode_with_metadata(out)
    assert back.gray == (name != "g.webp")
    assert (rgb == rgb[..., :1]).all() or name == "g.webp"  # no tint (lossy WebP's chroma is not exactly neutral)
    if name != "g.jpg":
        assert np.abs(rgb[..., 0].astype(int) - gray).max() <= (8 if name == "g.webp" else 0)


@pytest.mark.parametrize("name", ["ga.png", "ga16.png", "ga.tif", "ga16.tif", "ga.webp"])
def test_gray_alpha_and_gray16_round_trip(tmp_path, name):
    bit_depth = 16 if "16" in name else 8
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    rng = np.random.default_rng(2)
    gray = rng.integers(0, np.iinfo(dtype).max, (12, 15), dtype=dtype)
    alpha = rng.integers(0, np.iinfo(dtype).max, (12, 15), dtype=dtype)
    out = write_image(tmp_path / name, gray, alpha=alpha, bit_depth=bit_depth)
    rgb, alpha_back, depth, meta = decode_with_metadata(out)
    # WebP has no gray mode; Pillow cannot read a 16-bit gray + alpha TIFF, so that one is written RGBA
    assert depth == bit_depth and meta.gray == (name not in ("ga.webp", "ga16.tif"))
    if name != "ga.webp":  # lossy
        np.testing.assert_array_equal(alpha_back, alpha)
        np.testing.assert_array_equal(rgb[..., 1], gray)
        assert (rgb == rgb[..., :1]).all()


def test_icc_profile_of_another_colour_space_is_not_written(tmp_path):
    meta = ImageMetadata(icc_profile=gray_icc())
    out = write_image(tmp_path / "rgb.png", np.zeros((4, 5, 3), np.uint8), metadata=meta)
    assert "icc_profile" not in read_back(out)[1]


def test_float_rgb_tiff_is_named_as_floating_point(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    for name, shape in (("rgb.tif", (6, 7, 3)), ("gray.tif", (6, 7))):
        tifffile.imwrite(tmp_path / name, np.zeros(shape, np.float32), photometric="rgb" if len(shape) == 3 else None)
        with pytest.raises(ImageReadError, match=rf"{name}: floating-point images are not supported"):
            decode_image(tmp_path / name)


def test_broken_tiff_is_named(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 20)
    with pytest.raises(ImageReadError, match="bad.tif: a TIFF file nafft cannot decode"):
        decode_image(tmp_path / "bad.tif")


def test_written_tiff_is_read_by_tifffile(tmp_path):
    """The TIFF encoder's files are plain TIFF to other readers (strips, predictor, alpha as extra sample)."""
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 65535, (300, 1200, 4), dtype=np.uint16)  # several strips
    out = write_image(tmp_path / "big.tif", rgba[..., :3], alpha=rgba[..., 3], bit_depth=16)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert len(page.dataoffsets) > 1 and page.extrasamples == (2,)
        np.testing.assert_array_equal(page.asarray(), rgba)
    buffer = io.BytesIO(out.read_bytes())
    with PILImage.open(buffer) as im:
        assert im.size == (1200, 300)


def test_exif_and_xmp_too_large_for_a_jpeg_segment_are_left_out(tmp_path, caplog):
    big_exif = camera_exif()
    big_exif.get_ifd(EXIF_IFD)[0x9286] = b"ASCII\0\0\0" + b"x" * 70_000  # UserComment
    meta = ImageMetadata(exif=big_exif.tobytes(), xmp=b"<x>" + b" " * 70_000 + b"</x>", icc_profile=srgb_icc())
    out = write_image(tmp_path / "big.jpg", np.zeros((6, 7, 3), np.uint8), metadata=meta)
    exif, info = read_back(out)
    assert len(exif) == 0 and "xmp" not in info and info["icc_profile"] == srgb_icc()
    assert "EXIF of" in caplog.text and "XMP of" in caplog.text
    png = write_image(tmp_path / "big.png", np.zeros((6, 7, 3), np.uint8), metadata=meta)  # PNG holds them
    assert read_back(png)[0].get(MAKE) == "NaffCam"

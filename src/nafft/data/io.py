"""Image files in and out: one place that knows about formats, bit depths, alpha and EXIF orientation.

Every image reaches the network as float32 RGB in [0, 1]; grayscale is repeated to three channels, an alpha
channel is split off and kept (with the original bit depth) so that results can be written back the same way.
Supported: PNG, JPEG, TIFF, WebP, BMP, 8 and 16 bits per channel.

What a photograph carries besides its pixels travels with it (`ImageMetadata`, read by `decode_with_metadata`,
written by `write_image(..., metadata=)`): the ICC profile, EXIF, XMP and PNG text, wherever the output format
carries them (JPEG, PNG, WebP and TIFF carry ICC, EXIF and XMP; PNG text only PNG; BMP none). The pixels are turned
upright once, when read, so the EXIF and XMP orientation written back is 1 (a viewer must not turn them again).

Pillow (13 at the time of writing) decodes 16-bit grayscale correctly but truncates 16-bit RGB/RGBA PNG and TIFF to
their high bytes, and cannot write them. So:
- 16-bit PNG is decoded by Pillow's own C decoder twice, once with the unpacker that keeps the high byte of each
  sample and once with the byte-swapped unpacker that keeps the low byte; both passes run the full PNG
  unfiltering (the bytes per pixel are the same), so the result is exact, interlaced files included.
  16-bit gray+alpha PNG is unpacked as four raw bytes per pixel in one pass.
- 16-bit colour TIFF is read with `tifffile` (pure Python + numpy; deflate/packbits/uncompressed, LZW needs the
  optional `imagecodecs`).
- 16-bit PNG is written by a small numpy encoder below (Paeth filter, zlib), with the metadata chunks.
- TIFF (8 and 16 bits) is written by a small encoder below (deflate, horizontal predictor) whose tags, EXIF and GPS
  sub-IFDs included, Pillow serialises: Pillow's own TIFF writer cannot hold 16-bit colour and drops the EXIF
  sub-IFD of an EXIF block it is given, and `tifffile` writes no EXIF sub-IFD.

Writes are atomic and get the permissions of the user's umask (`nafft.atomic_files.atomic_write`).
"""

from __future__ import annotations

import dataclasses
import io as _io
import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from nafft.atomic_files import atomic_write_bytes  # noqa: F401 (re-exported: data writers import it from here)
from nafft.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_ORIENTATION_TAG = 0x0112
_EXIF_IFD_TAG = 0x8769
_GPS_IFD_TAG = 0x8825
_XMP_TAG = 700
_ICC_TAG = 34675
# TIFF tags that say how a file stores its pixels rather than what the picture is. A TIFF's first IFD holds them
# beside the EXIF-like tags (Make, Model, DateTime...), which is what Pillow's getexif() returns for a TIFF; they must
# not travel into a file that stores its pixels differently. ICC and XMP travel on their own.
_STRUCTURE_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 269, 273, 277, 278, 279, 280, 281, 284, 285, 297, 317, 320, 322,
    323, 324, 325, 330, 338, 339, 340, 341, 347, 513, 514, 529, 530, 531, 532, _XMP_TAG, _ICC_TAG,
})  # fmt: skip
# XMP's copy of the EXIF orientation, as attribute or element (Pillow's exif_transpose edits the same two forms).
_XMP_ORIENTATION = (
    re.compile(rb'(tiff:Orientation=")([0-9])(")'),
    re.compile(rb"(<tiff:Orientation>)([0-9])(</tiff:Orientation>)"),
)
_XMP_PNG_KEY = "XML:com.adobe.xmp"
# ImageMagick's PNG text copy of EXIF: replaced by the eXIf chunk written from the same EXIF (orientation 1).
_PNG_RAW_EXIF_KEY = "Raw profile type exif"

# A JPEG marker segment holds at most 65,533 bytes after its length: EXIF ("Exif\0\0" included) up to that, XMP up
# to that less its 29-byte namespace header (Pillow refuses more). A larger block from a PNG or TIFF is left out.
_JPEG_SEGMENT_BYTES = 65533
_JPEG_XMP_HEADER = 29

log = logging.getLogger(__name__)

# PNG raw modes of 16-bit colour data and the raw mode that unpacks the other (low) byte of every sample.
_PNG16_LOW_BYTE = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}


class ImageReadError(UserError):
    """An image file that is missing or cannot be decoded."""


class ImageWriteError(UserError):
    """An image that cannot be written to the requested file or format."""


@dataclass
class Image:
    """A decoded image.

    Attributes:
        rgb: float32 (H, W, 3) in [0, 1], EXIF orientation applied.
        alpha: float32 (H, W) in [0, 1], or None when the file has no alpha channel.
        bit_depth: 8 or 16, the bits per channel of the file.
        path: the file it came from, if any.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    path: Path | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


@dataclass(frozen=True)
class ImageMetadata:
    """What an image file carries besides its pixels, to be written back with a result made from them.

    Attributes:
        icc_profile: the ICC colour profile, or None.
        exif: an EXIF block (b"Exif\\0\\0" + TIFF structure) with the orientation, where there is one, set to 1: the
            pixels were turned upright when read. None when the file has no EXIF.
        xmp: the XMP packet (its tiff:Orientation set to 1 when the pixels were turned), or None.
        text: PNG text chunks (tEXt, zTXt, iTXt) as (keyword, text) pairs, XMP excluded.
        gray: the file stores one colour channel (grayscale, with or without alpha), so a result is written gray.
    """

    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    text: tuple[tuple[str, str], ...] = field(default=())
    gray: bool = False


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a visible file name with a supported image suffix (case-insensitive)."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in `folder` (or below it), sorted by path. Hidden files (our temporary files) are skipped.

    Raises:
        ImageReadError: the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: not a folder")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for path in candidates:
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if is_image_file(path) and path.is_file():
            found.append(path)
    return sorted(found)


# ----------------------------------------------------------------------------------------------------- reading


def _open(path: Path) -> PILImage.Image:
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        return PILImage.open(path)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: {_unidentified_reason(path)}") from None
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: cannot open image: {exc}") from None


def _unidentified_reason(path: Path) -> str:
    """Why Pillow could not open `path`: a TIFF whose samples nafft does not take is named as such (Pillow opens a
    float gray TIFF and nafft refuses it with this reason, but cannot open a float RGB one at all)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                dtype, samples, photometric = np.dtype(page.dtype), page.samplesperpixel, page.photometric.name
        except Exception:
            return "a TIFF file nafft cannot decode"
        if dtype.kind == "f":
            return "floating-point images are not supported (use 8 or 16-bit integers)"
        if dtype not in (np.uint8, np.uint16):
            return f"unsupported TIFF sample type {dtype} (expected 8 or 16-bit integers)"
        return f"a TIFF layout nafft cannot read ({photometric}, {samples} samples of {dtype})"
    return "not an image file Pillow can identify"


def _orientation(im: PILImage.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make the pixels unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, ...) array so that it displays upright."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, k=-1)
    if orientation == 7:
        return array[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(array, k=1)
    return array


def _tile_rawmode(tile) -> str:
    args = tile.args
    return args if isinstance(args, str) else args[0]


def _with_rawmode(tile, rawmode: str):
    args = tile.args
    return tile._replace(args=rawmode if isinstance(args, str) else (rawmode, *args[1:]))


def _can_limit_rows(im: PILImage.Image, rows: int | None) -> bool:
    """Whether decoding can stop after the first `rows` rows: non-interlaced PNG, not turned by EXIF (as far as
    the chunks before the pixel data tell)."""
    return not (rows is None or im.format != "PNG" or im.info.get("interlace") or len(im.tile) != 1
                or rows >= im.size[1] or ("exif" in im.info and _orientation(im) != 1))


def _limit_rows(im: PILImage.Image, rows: int | None) -> None:
    """Make Pillow decode only the first `rows` rows (the rest of the image stays zero).

    PNG stores rows top to bottom, so a crop near the top needs only part of the file decoded. Pillow skips the
    rest of the pixel data and still reads the chunks after it (a trailing EXIF chunk included).
    """
    if rows is not None:
        im.tile = [im.tile[0]._replace(extents=(0, 0, im.size[0], max(rows, 1)))]


def _decode_png16(path: Path, im: PILImage.Image, rows: int | None) -> np.ndarray | None:
    """Exact samples of a 16-bit colour PNG as uint16 (H, W, C), or None when `im` is not one."""
    if im.format != "PNG" or len(im.tile) != 1:
        return None
    rawmode = _tile_rawmode(im.tile[0])
    if rawmode == "LA;16B":
        im.tile = [_with_rawmode(im.tile[0], "RGBA")]  # four raw bytes per pixel: L hi, L lo, A hi, A lo
        _limit_rows(im, rows)
        raw = np.asarray(im).astype(np.uint16)
        return (raw[..., 0::2] << 8) | raw[..., 1::2]
    if rawmode not in _PNG16_LOW_BYTE:
        return None
    _limit_rows(im, rows)
    high = np.asarray(im).astype(np.uint16)
    with _open(path) as again:
        again.tile = [_with_rawmode(again.tile[0], _PNG16_LOW_BYTE[rawmode])]
        _limit_rows(again, rows)
        low = np.asarray(again).astype(np.uint16)
    return (high << 8) | low


def _is_tiff16_colour(im: PILImage.Image) -> bool:
    if im.format != "TIFF" or im.mode.startswith("I") or im.mode in ("L", "1", "P", "F"):
        return False
    bits = im.tag_v2.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(bits) > 8


def _decode_tiff16(path: Path) -> np.ndarray:
    try:
        import tifffile
    except ImportError:
        raise ImageReadError(f"{path}: 16-bit colour TIFF needs the 'tifffile' package (pip install tifffile)") from None
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            array = page.asarray()
            extra = page.extrasamples
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot decode 16-bit TIFF: {exc}") from None
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage
    if array.dtype != np.uint16:
        raise ImageReadError(f"{path}: unsupported TIFF sample type {array.dtype} (expected 8 or 16-bit integers)")
    if array.ndim == 3 and array.shape[-1] == 4 and extra and extra[0] == 1:  # associated (premultiplied) alpha
        alpha = array[..., 3:].astype(np.float64)
        colour = np.where(alpha > 0, array[..., :3] * 65535.0 / np.maximum(alpha, 1), 0)
        array = np.concatenate([np.clip(np.rint(colour), 0, 65535).astype(np.uint16), array[..., 3:]], axis=-1)
    return array


def _decode_pillow(path: Path, im: PILImage.Image, rows: int | None) -> np.ndarray:
    """8-bit (or 16-bit grayscale) samples as (H, W, C) with C in 1..4."""
    _limit_rows(im, rows)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16)[..., None]
    if mode == "I":
        array = np.asarray(im)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageReadError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
        return array.astype(np.uint16)[..., None]
    if mode == "F":
        raise ImageReadError(f"{path}: floating-point images are not supported (use 8 or 16-bit integers)")
    has_alpha = "A" in mode or "a" in mode or "transparency" in im.info
    if mode == "L":
        target = "L"
    elif mode in ("LA", "La") or (mode in ("L", "1") and has_alpha):
        target = "LA"
    elif mode == "1":
        target = "L"
    else:
        target = "RGBA" if has_alpha else "RGB"
    if mode != target:
        im = im.convert(target)
    array = np.asarray(im)
    return array[..., None] if array.ndim == 2 else array


def decode_image(path: str | os.PathLike, rows: int | None = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Integer pixels of an image file, EXIF orientation applied.

    Args:
        path: the image file.
        rows: return only the top `rows` rows; non-interlaced PNGs then decode only those (a crop near the top
            of a tile costs less).

    Returns:
        rgb: (H, W, 3) uint8 or uint16 (H limited to `rows`); grayscale repeated to three channels.
        alpha: (H, W) of the same dtype, or None.
        bit_depth: 8 or 16.

    Raises:
        ImageReadError: missing, truncated or undecodable file, or an unsupported pixel format; names the file.
    """
    rgb, alpha, bit_depth, _ = _decode(Path(path), rows, partial=True)
    return rgb, alpha, bit_depth


def decode_with_metadata(
    path: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray | None, int, ImageMetadata]:
    """`decode_image` of the whole file, plus what it carries besides its pixels (`ImageMetadata`), to be passed to
    `write_image` with a result made from them.

    Raises:
        ImageReadError: as `decode_image`.
    """
    return _decode(Path(path), None, partial=False, metadata=True)


def _decode(
    path: Path, rows: int | None, partial: bool, metadata: bool = False
) -> tuple[np.ndarray, np.ndarray | None, int, ImageMetadata | None]:
    with _open(path) as im:
        limit = rows if partial and _can_limit_rows(im, rows) else None
        try:
            if _is_tiff16_colour(im):
                array = _decode_tiff16(path)
            else:
                array = _decode_png16(path, im, limit)
                if array is None:
                    array = _decode_pillow(path, im, limit)
            # Pillow turns a TIFF itself when loading it (and then reports orientation 1); tifffile does not.
            orientation = _orientation(im)
            meta = _read_metadata(im, orientation) if metadata else None
        except UserError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, PILImage.DecompressionBombError) as exc:
            raise ImageReadError(f"{path}: cannot decode image: {exc}") from None
    if limit is not None and orientation != 1:
        return _decode(path, rows, partial=False)  # an EXIF chunk after the pixels turns the image
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[-1]
    if channels in (2, 4):
        colour, alpha = array[..., :-1], np.ascontiguousarray(array[..., -1])
    else:
        colour, alpha = array, None
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
        if meta is not None:
            meta = dataclasses.replace(meta, gray=True)
    elif colour.shape[-1] != 3:
        raise ImageReadError(f"{path}: unsupported number of channels ({channels})")
    colour = np.ascontiguousarray(_orient(colour, orientation)[:rows])
    if alpha is not None:
        alpha = np.ascontiguousarray(_orient(alpha, orientation)[:rows])
    bit_depth = 16 if colour.dtype == np.uint16 else 8
    return colour, alpha, bit_depth, meta


def _read_metadata(im: PILImage.Image, orientation: int) -> ImageMetadata:
    """The metadata of an opened (and decoded, so that PNG chunks after the pixels are seen) image; `orientation`
    is the one applied to its pixels."""
    icc = im.info.get("icc_profile") or None
    exif_block = None
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block is dropped rather than making the pixels unreadable
        exif = None
    if exif:
        for tag in _STRUCTURE_TAGS & set(exif):
            del exif[tag]
        if _ORIENTATION_TAG in exif:
            exif[_ORIENTATION_TAG] = 1
        if len(exif):
            try:
                exif_block = exif.tobytes()
            except Exception as exc:
                log.warning("%s: EXIF not kept, Pillow cannot write it back (%s)", im.filename, exc)
    xmp = im.info.get("xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if not isinstance(xmp, bytes):
        xmp = None
    if xmp is not None and orientation != 1:
        for pattern in _XMP_ORIENTATION:
            xmp = pattern.sub(rb"\g<1>1\g<3>", xmp)
    text: tuple[tuple[str, str], ...] = ()
    if im.format == "PNG":
        chunks = getattr(im, "text", None) or {}
        text = tuple(
            (str(key), str(value)) for key, value in chunks.items()
            if key != _XMP_PNG_KEY and not (key == _PNG_RAW_EXIF_KEY and exif_block is not None)
        )
    return ImageMetadata(icc_profile=icc, exif=exif_block, xmp=xmp, text=text)


def to_float(array: np.ndarray) -> np.ndarray:
    """uint8/uint16 samples -> float32 in [0, 1] (exact inverse of `quantize`)."""
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return (array.astype(np.float32) / np.float32(scale)).astype(np.float32, copy=False)


def read_image(path: str | os.PathLike) -> Image:
    """Read an image file as float32 RGB in [0, 1] plus its alpha channel and bit depth.

    Raises:
        ImageReadError: the file is missing or cannot be decoded; the message names it.
    """
    rgb, alpha, bit_depth = decode_image(path)
    return Image(rgb=to_float(rgb), alpha=None if alpha is None else to_float(alpha), bit_depth=bit_depth,
                 path=Path(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) as displayed (after EXIF orientation), read from the header only.

    For PNG only an EXIF chunk placed before the pixel data is seen (where the PNG specification puts it).

    Raises:
        ImageReadError: the file is missing or not an image.
    """
    path = Path(path)
    with _open(path) as im:
        width, height = im.size
        if im.format == "PNG" and "exif" not in im.info:
            return height, width  # getexif() would decode the whole file looking for a trailing chunk
        if _orientation(im) in (5, 6, 7, 8):
            return width, height
    return height, width


# ----------------------------------------------------------------------------------------------------- writing


def quantize(array: np.ndarray, bit_depth: int = 8, in_place: bool = False) -> np.ndarray:
    """float in [0, 1] -> uint8/uint16 (integers of that dtype pass through): nafft's one rounding, of saved images
    and of metrics (`nafft.metrics.to_uint8`): clip, x 255 (65535) in float32 or finer, round half to even, as
    BasicSR's `tensor2img` before the papers' metrics. `in_place=True` computes in `array` itself (overwriting it).
    """
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    array = np.asarray(array)
    if array.dtype == dtype:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"expected float pixels or {np.dtype(dtype).name}, got {array.dtype}")
    if not in_place or array.dtype.itemsize < 4:
        array = array.astype(np.promote_types(array.dtype, np.float32))
    scale = array.dtype.type(65535.0 if bit_depth == 16 else 255.0)
    np.clip(array, 0.0, 1.0, out=array)
    array *= scale
    np.rint(array, out=array)
    return array.astype(dtype)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_text_chunk(key: str, text: str) -> bytes:
    """tEXt when key and text are Latin-1 (what tEXt holds), else iTXt (UTF-8, uncompressed)."""
    name = key.encode("latin-1", "replace")[:79]
    try:
        return _png_chunk(b"tEXt", name + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", name + b"\0\0\0\0\0" + text.encode("utf-8"))


def _png_metadata_chunks(metadata: ImageMetadata | None, channels: int) -> bytes:
    """iCCP, eXIf, XMP (iTXt) and text chunks for a PNG whose pixels have `channels` samples."""
    if metadata is None:
        return b""
    chunks = b""
    icc = _matching_icc(metadata, channels)
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc))
    if metadata.exif:
        exif = metadata.exif[6:] if metadata.exif.startswith(b"Exif\0\0") else metadata.exif
        chunks += _png_chunk(b"eXIf", exif)
    if metadata.xmp:
        chunks += _png_chunk(b"iTXt", _XMP_PNG_KEY.encode() + b"\0\0\0\0\0" + metadata.xmp)
    for key, text in metadata.text:
        chunks += _png_text_chunk(key, text)
    return chunks


def encode_png16(array: np.ndarray, compress_level: int = 6, metadata: ImageMetadata | None = None) -> bytes:
    """A 16-bit PNG of a uint16 (H, W), (H, W, 1..4) array (every row Paeth-filtered), with `metadata`'s chunks."""
    array = np.asarray(array, dtype=np.uint16)
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    raw = array.astype(">u2").view(np.uint8).reshape(height, width * bpp).astype(np.int16)
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up = np.zeros_like(raw)
    up[1:] = raw[:-1]
    up_left = np.zeros_like(raw)
    up_left[1:, bpp:] = raw[:-1, :-bpp]
    pa = np.abs(up - up_left)
    pb = np.abs(left - up_left)
    pc = np.abs(left + up - 2 * up_left)
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    filtered = ((raw - predictor) & 0xFF).astype(np.uint8)
    rows = np.concatenate([np.full((height, 1), 4, np.uint8), filtered], axis=1)  # filter type 4 = Paeth
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_metadata_chunks(metadata, channels)
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level)) + _png_chunk(b"IEND", b""))


def _exif_entries(exif_block: bytes) -> dict[int, object]:
    """The tags of an EXIF block as Pillow's TIFF writer takes them: values, and the EXIF and GPS sub-IFDs as dicts
    (the interoperability IFD inside the EXIF one too), as `PIL.Image.Exif.tobytes` itself arranges them."""
    exif = PILImage.Exif()
    exif.load(exif_block)
    entries: dict[int, object] = {}
    for tag, value in exif.items():
        if tag in _STRUCTURE_TAGS:
            continue
        if tag in (_EXIF_IFD_TAG, _GPS_IFD_TAG) and not isinstance(value, dict):
            value = dict(exif.get_ifd(tag))
            interop = PILImage.ExifTags.IFD.Interop
            if tag == _EXIF_IFD_TAG and interop in value and not isinstance(value[interop], dict):
                value[interop] = dict(exif.get_ifd(interop))
            if not value:
                continue
        entries[tag] = value
    return entries


def encode_tiff(array: np.ndarray, metadata: ImageMetadata | None = None, compress_level: int = 6) -> bytes:
    """A little-endian TIFF of a uint8 or uint16 (H, W, 1..4) array: deflate with the horizontal predictor, strips of
    about 1 MiB, a last channel of 2 or 4 stored as unassociated alpha, and `metadata`'s EXIF (IFD0 tags and the
    EXIF and GPS sub-IFDs), XMP and ICC profile.
    """
    from PIL import TiffImagePlugin, TiffTags

    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    bits = array.dtype.itemsize * 8
    # Horizontal differencing (TIFF Predictor 2) in the sample type's own wrap-around arithmetic.
    diff = array.copy()
    diff[:, 1:] -= array[:, :-1]
    row_bytes = width * channels * array.dtype.itemsize
    rows_per_strip = max(1, min(height, (1 << 20) // max(1, row_bytes)))
    raw = diff.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    strips = [zlib.compress(raw[y * row_bytes : (y + rows_per_strip) * row_bytes], compress_level)
              for y in range(0, height, rows_per_strip)]
    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II\x2a\x00\x08\x00\x00\x00")
    if metadata is not None and metadata.exif:
        for tag, value in _exif_entries(metadata.exif).items():
            ifd[tag] = value
            if isinstance(value, dict):
                ifd.tagtype[tag] = TiffTags.LONG
    if metadata is not None and metadata.xmp:
        ifd[_XMP_TAG] = metadata.xmp
        ifd.tagtype[_XMP_TAG] = TiffTags.BYTE
    icc = _matching_icc(metadata, channels)
    if icc:
        ifd[_ICC_TAG] = icc
        ifd.tagtype[_ICC_TAG] = TiffTags.UNDEFINED
    colour = channels - (channels in (2, 4))
    structure = {
        256: (width, TiffTags.LONG), 257: (height, TiffTags.LONG), 258: ((bits,) * channels, TiffTags.SHORT),
        259: (8, TiffTags.SHORT), 262: (2 if colour == 3 else 1, TiffTags.SHORT), 277: (channels, TiffTags.SHORT),
        278: (rows_per_strip, TiffTags.LONG), 284: (1, TiffTags.SHORT), 317: (2, TiffTags.SHORT),
        339: ((1,) * channels, TiffTags.SHORT), 279: (tuple(len(s) for s in strips), TiffTags.LONG),
        # relative to the end of the IFD and its values: Pillow adds that offset when it serialises the IFD
        273: (tuple(np.cumsum([0] + [len(s) for s in strips[:-1]]).tolist()), TiffTags.LONG),
    }  # fmt: skip
    if channels in (2, 4):
        structure[338] = (2, TiffTags.SHORT)  # unassociated alpha
    for tag, (value, kind) in structure.items():
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    head = ifd.tobytes(8)
    return b"II\x2a\x00" + struct.pack("<I", 8) + head + b"".join(strips)


def _matching_icc(metadata: ImageMetadata | None, channels: int) -> bytes | None:
    """The metadata's ICC profile when it describes the colour space written (gray for 1-2 channels, RGB for 3-4):
    a CMYK JPEG's profile (its pixels are read as RGB) or a gray one on RGB pixels would misdescribe them."""
    if metadata is None or not metadata.icc_profile:
        return None
    space = metadata.icc_profile[16:20]
    want = b"GRAY" if channels <= 2 else b"RGB "
    if space != want:
        log.info("ICC profile for colour space %r not written with %s pixels", space, "gray" if channels <= 2 else "RGB")
        return None
    return metadata.icc_profile


def _fits_jpeg(path: Path, what: str, block: bytes | None, most: int) -> bytes | None:
    """`block` when one JPEG marker segment holds it (at most `most` bytes), else None, with a warning."""
    if block is not None and len(block) > most:
        log.warning("%s: %s of %d bytes left out: one JPEG segment holds %d", path, what, len(block), most)
        return None
    return block


def check_writable(path: str | os.PathLike, bit_depth: int = 8, alpha: bool = False) -> None:
    """Raise ImageWriteError when `path`'s format cannot hold `bit_depth` bits per channel (or an alpha channel):
    a check to run before any work whose result would be refused at write time.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageWriteError(f"{path}: unknown image suffix; use one of {', '.join(IMAGE_SUFFIXES)}")
    if bit_depth not in (8, 16):
        raise ImageWriteError(f"{path}: bit depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and fmt not in ("PNG", "TIFF"):
        raise ImageWriteError(f"{path}: {fmt} cannot store 16 bits per channel; use .png or .tif")
    if alpha and fmt == "JPEG":
        raise ImageWriteError(f"{path}: JPEG cannot store an alpha channel; use .png, .webp or .tif")


# The IJG (libjpeg) luminance quantisation table at quality 50, which `quality` scales.
_IJG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def jpeg_options(path: str | os.PathLike) -> dict:
    """The quality and chroma subsampling a JPEG file was saved with (estimated from its luminance quantisation
    table, as libjpeg scales it), so that a result written as JPEG is not larger than its input for nothing;
    {} for other files.
    """
    try:
        with PILImage.open(path) as im:
            if im.format != "JPEG":
                return {}
            tables = getattr(im, "quantization", None) or {}
            from PIL import JpegImagePlugin

            sampling = JpegImagePlugin.get_sampling(im)
    except (OSError, ValueError, SyntaxError):
        return {}
    options: dict = {}
    if 0 in tables and len(tables[0]) == 64:
        scale = 100.0 * sum(tables[0]) / sum(_IJG_LUMA)  # libjpeg: q_i = (T_i * scale + 50) / 100
        quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
        options["quality"] = int(min(95, max(1, round(quality))))
    if sampling in (0, 1, 2):
        options["subsampling"] = sampling
    return options


def _encode(path: Path, pixels: np.ndarray, bit_depth: int, quality: int, compress_level: int,
            subsampling: int = 0, metadata: ImageMetadata | None = None) -> bytes:
    fmt = _FORMATS[path.suffix.lower()]
    channels = pixels.shape[-1]
    check_writable(path, bit_depth, alpha=channels in (2, 4))
    if fmt == "TIFF":
        if bit_depth == 16 and channels == 2:
            # 16-bit gray + alpha TIFF is valid but Pillow cannot open it: written as RGBA, so that nafft reads it back
            pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=-1), pixels[..., 1:]], axis=-1)
        return encode_tiff(pixels, metadata, compress_level)
    if bit_depth == 16:
        return encode_png16(pixels, compress_level, metadata)
    if (fmt == "WEBP" and channels <= 2) or (fmt == "BMP" and channels == 2):
        # WebP has no gray mode and BMP no gray + alpha: equal R, G and B (what Pillow would convert them to).
        pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=-1), pixels[..., 1:]], axis=-1)
        channels = pixels.shape[-1]
    im = PILImage.fromarray(pixels[..., 0] if channels == 1 else pixels, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels])
    options: dict = {}
    if fmt == "JPEG":
        options = {"quality": quality, "subsampling": subsampling}
    elif fmt == "WEBP":
        options = {"quality": quality}
    elif fmt == "PNG":
        options = {"compress_level": compress_level}
    if metadata is not None and fmt != "BMP":  # BMP carries none of them
        exif, xmp = metadata.exif, metadata.xmp
        if fmt == "JPEG":
            exif = _fits_jpeg(path, "EXIF", exif, _JPEG_SEGMENT_BYTES)
            xmp = _fits_jpeg(path, "XMP", xmp, _JPEG_SEGMENT_BYTES - _JPEG_XMP_HEADER)
        icc = _matching_icc(metadata, channels)
        if icc:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = exif
        if fmt == "PNG":
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            if xmp:
                info.add_itxt(_XMP_PNG_KEY, xmp.decode("utf-8", "replace"))
            for key, text in metadata.text:
                info.add_text(key, text)
            options["pnginfo"] = info
        elif xmp:
            options["xmp"] = xmp
    buffer = _io.BytesIO()
    im.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    quality: int = 95,
    compress_level: int = 6,
    subsampling: int = 0,
    metadata: ImageMetadata | None = None,
) -> Path:
    """Write an RGB or gray image (and optional alpha) atomically; the format follows the file suffix.

    Args:
        path: target file; .png, .jpg/.jpeg, .tif/.tiff, .webp or .bmp. Parent folders are created.
        rgb: (H, W, 3) colour or (H, W) / (H, W, 1) gray, float in [0, 1] (clipped and rounded), or uint8 / uint16
            samples matching `bit_depth`. Gray is written as gray where the format has it (WebP has not: equal R, G
            and B).
        alpha: (H, W) in the same convention, or None.
        bit_depth: 8, or 16 for PNG and TIFF.
        quality: JPEG / WebP quality.
        compress_level: PNG zlib level (0-9).
        subsampling: JPEG chroma subsampling: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0 (`jpeg_options` reads a file's).
        metadata: ICC profile, EXIF, XMP and PNG text to write, where the format carries them
            (`decode_with_metadata` reads them); an ICC profile of another colour space than the pixels' is left out.

    Raises:
        ImageWriteError: unknown suffix, or a format that cannot hold the bit depth or the alpha channel.
    """
    path = Path(path)
    check_writable(path, bit_depth, alpha=alpha is not None)
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    if rgb.ndim != 3 or rgb.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: expected an (H, W, 3) or (H, W) array, got shape {rgb.shape}")
    pixels = quantize(rgb, bit_depth)
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"{path}: alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
        pixels = np.concatenate([pixels, quantize(alpha, bit_depth)[..., None]], axis=-1)
    pixels = np.ascontiguousarray(pixels)
    atomic_write_bytes(path, _encode(path, pixels, bit_depth, quality, compress_level, subsampling, metadata))
    return path


# ------------------------------------------------------------------------------------------------- tensors


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float or uint8/uint16 array -> (3, H, W) float32 tensor in [0, 1].

    Integer pixels are transposed before `to_float`, so a large image never has an (H, W, 3) float copy besides
    the tensor (the same values either way).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype in (np.uint8, np.uint16):
        return torch.from_numpy(to_float(np.ascontiguousarray(rgb.transpose(2, 0, 1))))
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) tensor -> (H, W, 3) float32 array (values not clipped)."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(tensor.shape)}")
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0))

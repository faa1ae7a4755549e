"""An independent, minimal 16-bit PNG writer for tests: filter type 0 only, optional Adam7 interlacing."""

import struct
import zlib

import numpy as np

_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_raw_png16(path, array, interlace=False):
    array = np.asarray(array, dtype=np.uint16)
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def rows(sub):
        return b"".join(b"\x00" + row.astype(">u2").tobytes() for row in sub)

    if interlace:
        passes = [array[y0::dy, x0::dx] for x0, y0, dx, dy in _ADAM7]
        raw = b"".join(rows(p) for p in passes if p.size)
    else:
        raw = rows(array)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlace))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

"""Every image that enters mmdemo: decode, EXIF-rotate, convert to RGB, enforce size limits, explain failures."""
from __future__ import annotations

import hashlib
import io
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple, Union

import numpy as np
from PIL import Image, ImageOps

from .config import settings
from .errors import ImageError

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image, np.ndarray]

FORMATS = ("PNG", "JPEG", "MPO", "GIF", "WEBP", "BMP", "TIFF")  # what PIL may try (MPO: phone JPEGs); never EPS etc.
SUPPORTED = "PNG, JPEG, GIF, WebP, BMP, TIFF"                     # the same, as users name them
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM",
               b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # magic bytes of FORMATS (WebP: see _looks_like_image)
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}  # more than 8 bits per channel
_WHITE = (255, 255, 255, 255)
_PIL_LIMIT_LOCK = threading.Lock()


class _PixelLimit(NamedTuple):
    pixels: int
    setting: str  # " (MMDEMO_MAX_PIXELS)" when the limit came from the settings, "" when the caller passed it


# ---------------------------------------------------------------------------------------------- public API


def load_image(source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
    """Decode `source` into an RGB image: fully loaded, upright (EXIF orientation applied), no metadata.

    source: a path (str or Path), encoded bytes (bytes, bytearray, memoryview), a binary file object,
    a PIL image, or a numpy array (H×W, H×W×1, H×W×3, H×W×4; uint8, bool, uint16, or float in [0, 1]).
    max_pixels: refuse images with more pixels (default: settings().max_pixels); checked from the
    header, before any pixel is decoded.
    Raises ImageError, with a one-line message for the user, for anything it cannot accept.
    """
    limit = _pixel_limit(max_pixels)
    if source is None:
        raise ImageError("no image was given")
    if isinstance(source, Image.Image):
        return _from_pil(source, limit)
    if isinstance(source, np.ndarray):
        return _from_array(source, limit)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _from_encoded(_read_path(path), limit, name=_quote(path))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_encoded(_bytes_of(source), limit, name=None)
    if hasattr(source, "read"):
        name = _quote(source.name) if isinstance(getattr(source, "name", None), str) else None
        return _from_encoded(_read_stream(source, _file(name)), limit, name=name)
    raise ImageError(f"cannot read an image from a {type(source).__name__}; "
                     "pass a path, bytes, a binary file, a PIL image or a numpy array")


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of an RGB image; the same pixels always give the same bytes (no metadata, fixed settings)."""
    fresh = Image.frombytes("RGB", image.size, _rgb_pixels(image))  # empty .info: no ICC, EXIF, text or tRNS chunks
    buffer = io.BytesIO()
    fresh.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def content_hash(image: Image.Image) -> str:
    """SHA-256 (hex) of an RGB image's width, height and pixels: one picture, one hash, whatever it came from."""
    pixels = _rgb_pixels(image)
    width, height = image.size
    digest = hashlib.sha256(f"{width}x{height}:".encode())
    digest.update(pixels)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ reading bytes


def _read_path(path: Path) -> bytes:
    """The file's bytes, after checking that it exists, is a file, and is not empty or too large."""
    try:
        size = path.stat().st_size
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
        raise ImageError(f"no such file: {_quote(path)}") from None
    except OSError as e:
        raise ImageError(f"cannot read {_quote(path)}: {e.strerror or e}") from None
    if path.is_dir():
        raise ImageError(f"{_quote(path)} is a folder, not an image file")
    label = _file(_quote(path))
    if size == 0:  # also devices and pipes: never read those
        raise ImageError(f"{label} is empty")
    _check_bytes(label, size)
    try:
        with path.open("rb") as stream:
            return _read_stream(stream, label)
    except OSError as e:
        raise ImageError(f"cannot read {_quote(path)}: {e.strerror or e}") from None


def _read_stream(stream: BinaryIO, label: str) -> bytes:
    """Read a binary file object to its end, but never more than the upload limit (+1 byte, to notice)."""
    limit = settings().max_upload_bytes
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        try:
            chunk = stream.read(limit + 1 - total)
        except (OSError, ValueError) as e:  # ValueError: the file is closed
            raise ImageError(f"cannot read {label}: {e}") from None
        if isinstance(chunk, str):
            raise ImageError(f"{label} was opened in text mode; open it in binary mode ('rb')")
        if not chunk:
            break
        chunks.append(bytes(chunk))
        total += len(chunk)
    if total > limit:
        raise ImageError(f"{label} is larger than the limit of {_format_bytes(limit)} (MMDEMO_MAX_UPLOAD_BYTES)")
    return b"".join(chunks)


def _bytes_of(data: bytes | bytearray | memoryview) -> bytes:
    nbytes = data.nbytes if isinstance(data, memoryview) else len(data)
    _check_bytes("the file", nbytes)
    return data.tobytes() if isinstance(data, memoryview) else bytes(data)


def _check_bytes(label: str, nbytes: int) -> None:
    limit = settings().max_upload_bytes
    if nbytes > limit:
        raise ImageError(f"{label} is {_format_bytes(nbytes)}; "
                         f"the limit is {_format_bytes(limit)} (MMDEMO_MAX_UPLOAD_BYTES)")


# --------------------------------------------------------------------------------------------- decoding


def _from_encoded(data: bytes, limit: _PixelLimit, *, name: str | None) -> Image.Image:
    """Open lazily, check the header's size against the limit, and only then decode."""
    if not data:
        raise ImageError(f"{_file(name)} is empty")
    with _pil_bomb_check_off():
        try:
            opened = Image.open(io.BytesIO(data), formats=_registered_formats())  # reads the header only
        except Exception:  # UnidentifiedImageError, or OSError, SyntaxError, struct.error, … from a parser
            if _looks_like_image(data):
                raise ImageError(_corrupt(name)) from None
            raise ImageError(f"{_file(name)} is not an image PIL can read (supported: {SUPPORTED})") from None
    with opened:
        _check_size(opened.size, limit)
        return _upright_rgb(opened, name)


def _from_pil(image: Image.Image, limit: _PixelLimit) -> Image.Image:
    """A caller's PIL image (possibly still lazy, current frame): same checks and conversion, never mutated."""
    _check_size(image.size, limit)
    return _upright_rgb(image, None)


def _upright_rgb(image: Image.Image, name: str | None) -> Image.Image:
    _decode(image, name)
    rgb = _to_rgb(_exif_upright(image))
    rgb.info = {}  # drop EXIF (GPS …), ICC and comments: the pixels are all that travel on
    return rgb


def _decode(image: Image.Image, name: str | None) -> None:
    with _pil_bomb_check_off():
        try:
            image.load()  # the first frame of an animation; no-op when already loaded
        except Exception:  # OSError "image file is truncated", "broken data stream", SyntaxError, …
            raise ImageError(_corrupt(name)) from None


def _exif_upright(image: Image.Image) -> Image.Image:
    """A copy turned as the camera's EXIF Orientation tag says."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF: keep the pixels as stored rather than refuse the photo
        return image.copy()


@contextmanager
def _pil_bomb_check_off() -> Iterator[None]:
    """Switch off PIL's decompression-bomb check (error and warning) for the block; `_check_size` replaces it.

    Ours reads the size from the header, refuses before decoding, and names the setting to change.
    PIL's limit is a module global, so it is off only inside this block, under a lock.
    """
    with _PIL_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _registered_formats() -> list[str]:
    """FORMATS that this PIL build can open (Image.init() registers the plugins beyond the basic five once)."""
    Image.init()
    return [name for name in FORMATS if name in Image.OPEN]


def _looks_like_image(data: bytes) -> bool:
    """Does the data start like one of FORMATS? Then a failure to open it means it is damaged."""
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


# ---------------------------------------------------------------------------------------- size limits


def _pixel_limit(max_pixels: int | None) -> _PixelLimit:
    limit = _PixelLimit(settings().max_pixels, " (MMDEMO_MAX_PIXELS)") if max_pixels is None \
        else _PixelLimit(int(max_pixels), "")
    if limit.pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {limit.pixels}{limit.setting}")
    return limit


def _check_size(size: tuple[int, int], limit: _PixelLimit) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"the image has zero width or height ({width}×{height})")
    if width * height > limit.pixels:
        raise ImageError(f"image is {width}×{height} = {_format_pixels(width * height)}; "
                         f"the limit is {_format_pixels(limit.pixels)}{limit.setting}")


def _format_pixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels" if n >= 1_000_000 else f"{n:,} pixels"


def _format_bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _file(name: str | None) -> str:
    return f"the file {name}" if name else "the file"


def _corrupt(name: str | None) -> str:
    return f"the image data in {name} is truncated or corrupt" if name else "the image data is truncated or corrupt"


def _quote(path: str | os.PathLike) -> str:
    """A path for a one-line message: quoted, control characters escaped, long ones shortened."""
    text = os.fspath(path)
    text = text if len(text) <= 200 else "…" + text[-199:]
    return repr(text)


# ------------------------------------------------------------------------------------ modes → RGB


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as RGB: deep modes scaled (not clipped) to 8 bits, transparency composited on white."""
    if image.mode in _HIGH_DEPTH_MODES:
        image = Image.fromarray(_high_depth_to_uint8(np.asarray(image)))  # mode L
    try:
        if image.mode in _ALPHA_MODES or "transparency" in image.info:  # P/L/RGB with tRNS included
            return _on_white(image.convert("RGBA"))
        return image.convert("RGB")  # RGB (a copy), L, 1, P, CMYK, YCbCr, …
    except (ValueError, OSError):  # e.g. LAB: PIL has no plain conversion
        raise ImageError(f"images with pixel mode {image.mode} are not supported") from None


def _on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, _WHITE)
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_depth_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit integer or float pixels to 0..255 by scaling.

    Integers in 0..65535 scale as 16-bit (65535 → 255); floats in [0, 1] as fractions (1.0 → 255);
    anything else is stretched from its min..max (non-finite values become 0).
    """
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        unit = values if 0.0 <= lo and hi <= 1.0 else _stretch(values, lo, hi)
        return _unit_to_uint8(np.where(np.isfinite(unit), unit, 0.0))
    lo, hi = int(values.min()), int(values.max())
    if 0 <= lo and hi <= 65535:
        return _unit_to_uint8(values / np.float32(65535))
    return _unit_to_uint8(_stretch(values, lo, hi))


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:  # a constant image
        return np.zeros(values.shape, np.float32)
    return (values.astype(np.float64) - lo) / (hi - lo)


def _unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(unit, np.float32) * 255), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------ numpy arrays


def _from_array(array: np.ndarray, limit: _PixelLimit) -> Image.Image:
    """H×W, H×W×1, H×W×3 or H×W×4 array (uint8, bool, uint16, float in [0, 1]) → RGB image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        hint = "; a channels-first (C×H×W) array needs .transpose(1, 2, 0)" \
            if array.ndim == 3 and array.shape[0] in (1, 3, 4) else ""
        raise ImageError(f"a numpy image must be H×W, H×W×1, H×W×3 or H×W×4; got shape {array.shape}{hint}")
    height, width = array.shape[:2]
    _check_size((width, height), limit)
    image = Image.fromarray(np.ascontiguousarray(_array_to_uint8(array)))  # L, RGB or RGBA
    rgb = _to_rgb(image)
    rgb.info = {}
    return rgb


def _array_to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return np.where(array, np.uint8(255), np.uint8(0))
    if array.dtype == np.uint16:
        return _unit_to_uint8(array / np.float32(65535))
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ImageError("the image array holds NaN or infinite values")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(f"a float image array must hold values in [0, 1]; this one spans [{lo:.4g}, {hi:.4g}]")
        return _unit_to_uint8(array)
    raise ImageError(f"a numpy image must be uint8, bool, uint16 or float in [0, 1]; got {array.dtype} "
                     "(convert it, e.g. with .astype(np.uint8))")


def _rgb_pixels(image: Image.Image) -> bytes:
    if not isinstance(image, Image.Image) or image.mode != "RGB":
        got = f"mode {image.mode}" if isinstance(image, Image.Image) else type(image).__name__
        raise ImageError(f"expected an RGB PIL image (from load_image); got {got}")
    return image.tobytes()

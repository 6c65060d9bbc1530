"""Tests for mmdemo.images: every way an image can enter, every mode, every way it can fail."""
from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from mmdemo.errors import ImageError
from mmdemo.images import content_hash, encode_png, load_image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
NOT_AN_IMAGE = r"is not an image PIL can read \(supported: PNG, JPEG, GIF, WebP, BMP, TIFF\)"


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def scene() -> Image.Image:
    """A 40×20 RGB image: blue, with a red 10×10 block in the top-left corner and one green pixel."""
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 10, 10))
    image.putpixel((39, 19), GREEN)
    return image


def png_chunks(data: bytes) -> list[bytes]:
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        chunks.append(data[at + 4:at + 8])
        at += 12 + length
    return chunks


def png_declaring_size(width: int, height: int) -> bytes:
    """A real 1×1 PNG whose IHDR is patched to claim another size (CRC fixed, so only decoding would notice)."""
    data = bytearray(encoded(Image.new("RGB", (1, 1), RED), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def pil_mode_and_frames(path: Path) -> tuple[str, int]:
    """How PIL itself sees a file: its mode and number of frames."""
    with Image.open(path) as image:
        return image.mode, getattr(image, "n_frames", 1)


def close(pixel, expected, tolerance=8) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected))


# ------------------------------------------------------------------------------------------ inputs


def test_path_str_and_pathlib_give_a_loaded_detached_rgb_image(tmp_path):
    path = tmp_path / "scene.png"
    scene().save(path)
    for source in (str(path), path):
        image = load_image(source)
        assert type(image) is Image.Image  # a plain, loaded image, not a lazy PngImageFile
        assert image.mode == "RGB" and image.size == (40, 20)
        assert image.info == {}
    path.unlink()
    assert image.getpixel((0, 0)) == RED and image.getpixel((39, 19)) == GREEN


@pytest.mark.parametrize("fmt, options, exact", [
    ("PNG", {}, True),
    ("JPEG", {"quality": 95}, False),
    ("GIF", {}, True),
    ("WEBP", {"lossless": True}, True),
    ("BMP", {}, True),
    ("TIFF", {}, True),
    ("TIFF", {"compression": "tiff_lzw"}, True),
])
def test_each_format_decodes(tmp_path, fmt, options, exact):
    path = tmp_path / f"scene.{fmt.lower()}"
    path.write_bytes(encoded(scene(), fmt, **options))
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (40, 20)
    if exact:
        assert image.getpixel((2, 2)) == RED and image.getpixel((30, 10)) == BLUE
    else:
        assert close(image.getpixel((2, 2)), RED) and close(image.getpixel((30, 10)), BLUE)


def test_multi_picture_jpeg_from_a_phone_gives_its_first_picture():
    data = encoded(Image.new("RGB", (8, 8), RED), "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8), GREEN)])
    assert close(load_image(data).getpixel((4, 4)), RED)


def test_formats_outside_the_list_are_refused():
    with pytest.raises(ImageError, match="^the file " + NOT_AN_IMAGE):
        load_image(encoded(scene(), "PPM"))


def test_bytes_bytearray_memoryview_file_object_path_and_pil_hash_equally(tmp_path):
    data = encoded(scene(), "PNG")
    path = tmp_path / "scene.png"
    path.write_bytes(data)
    with path.open("rb") as stream:
        from_stream = load_image(stream)
    with Image.open(io.BytesIO(data)) as lazy:
        from_lazy_pil = load_image(lazy)
    sources = [data, bytearray(data), memoryview(data), io.BytesIO(data), path, str(path), scene(), np.asarray(scene())]
    hashes = {content_hash(load_image(source)) for source in sources}
    hashes |= {content_hash(from_stream), content_hash(from_lazy_pil)}
    assert len(hashes) == 1


def test_pil_input_is_not_mutated_or_returned():
    original = scene().convert("RGBA")
    image = load_image(original)
    assert image is not original and original.mode == "RGBA" and image.mode == "RGB"


def test_none_is_refused():
    with pytest.raises(ImageError, match="no image was given"):
        load_image(None)


@pytest.mark.parametrize("source", [42, 3.5, ["a.png"], {"path": "a.png"}])
def test_unsupported_source_type(source):
    with pytest.raises(ImageError, match=f"cannot read an image from a {type(source).__name__}; pass a path"):
        load_image(source)


def test_text_mode_file_object_is_refused(tmp_path):
    path = tmp_path / "scene.png"
    scene().save(path)
    with path.open("r", encoding="latin-1") as stream:
        with pytest.raises(ImageError, match=r"opened in text mode; open it in binary mode \('rb'\)"):
            load_image(stream)


# ------------------------------------------------------------------------------------------ EXIF


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    scene().save(path, "JPEG", quality=95, exif=exif.tobytes())
    image = load_image(path)
    assert image.size == (20, 40)
    # the red block, stored top-left, is displayed top-right; the green pixel (bottom-right) moves bottom-left
    assert close(image.getpixel((15, 4)), RED)
    assert close(image.getpixel((4, 4)), BLUE) and close(image.getpixel((15, 35)), BLUE)
    assert 0x0112 not in image.getexif()


def test_exif_orientation_is_applied_to_pil_input_too(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.png"
    scene().save(path, exif=exif.tobytes())
    with Image.open(path) as lazy:
        assert load_image(lazy).size == (20, 40)


# ------------------------------------------------------------------------------------------ modes


def test_mode_L(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (4, 3), 77).save(path)
    assert load_image(path).getpixel((1, 1)) == (77, 77, 77)


def test_mode_LA_alpha_on_white(tmp_path):
    image = Image.new("LA", (3, 1))
    image.putdata([(0, 0), (0, 255), (0, 128)])  # transparent, opaque and half-transparent black
    path = tmp_path / "grey_alpha.png"
    image.save(path)
    rgb = load_image(path)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [WHITE, (0, 0, 0), (127, 127, 127)]


def test_mode_RGBA_alpha_on_white(tmp_path):
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)])
    path = tmp_path / "rgba.png"
    image.save(path)
    rgb = load_image(path)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [WHITE, RED, (127, 127, 127)]


def test_mode_P_without_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1])
    path = tmp_path / "palette.png"
    image.save(path)
    rgb = load_image(path)
    assert rgb.mode == "RGB" and [rgb.getpixel((x, 0)) for x in range(2)] == [(10, 20, 30), (200, 100, 50)]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_mode_P_with_transparency_on_white(tmp_path, fmt):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 0] + [0] * 762)
    image.putdata([0, 1])
    path = tmp_path / f"palette.{fmt.lower()}"
    image.save(path, fmt, transparency=1)
    assert pil_mode_and_frames(path)[0] == "P"
    rgb = load_image(path)
    assert [rgb.getpixel((x, 0)) for x in range(2)] == [RED, WHITE]


def test_RGB_with_transparent_colour_on_white(tmp_path):
    image = Image.new("RGB", (2, 1), RED)
    image.putpixel((1, 0), GREEN)
    path = tmp_path / "trns.png"
    image.save(path, transparency=GREEN)
    rgb = load_image(path)
    assert [rgb.getpixel((x, 0)) for x in range(2)] == [RED, WHITE]


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_mode_CMYK(tmp_path, fmt):
    image = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 0))  # full cyan
    path = tmp_path / f"cmyk.{fmt.lower()}"
    image.save(path, fmt)
    assert pil_mode_and_frames(path)[0] == "CMYK"
    rgb = load_image(path)
    assert close(rgb.getpixel((0, 0)), WHITE) and close(rgb.getpixel((1, 0)), (0, 255, 255))


def test_mode_I16_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert pil_mode_and_frames(path)[0] == "I;16"
    rgb = load_image(path)
    assert [rgb.getpixel((x, 0)) for x in range(4)] == [(0, 0, 0), (4, 4, 4), (100, 100, 100), WHITE]


def test_mode_I_in_16_bit_range_is_scaled(tmp_path):
    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.int32)).save(path)
    assert pil_mode_and_frames(path)[0] == "I"
    rgb = load_image(path)
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]


def test_mode_I_outside_16_bit_range_is_stretched():
    image = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    assert image.mode == "I"
    assert [load_image(image).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_mode_F_in_unit_range_is_scaled(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(path)
    assert pil_mode_and_frames(path)[0] == "F"
    assert [load_image(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_mode_F_outside_unit_range_is_stretched_and_nan_is_black():
    image = Image.fromarray(np.array([[-1.0, 1.0, 3.0, np.nan]], dtype=np.float32))
    assert [load_image(image).getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]


def test_mode_1_bilevel(tmp_path):
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    path = tmp_path / "bilevel.png"
    image.save(path)
    assert pil_mode_and_frames(path)[0] == "1"
    rgb = load_image(path)
    assert [rgb.getpixel((x, 0)) for x in range(2)] == [(0, 0, 0), WHITE]


def test_unconvertible_mode_is_a_clear_error():
    with pytest.raises(ImageError, match="pixel mode La are not supported"):
        load_image(Image.new("La", (2, 2)))


# ------------------------------------------------------------------------------------------ animations


def frames() -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]


@pytest.mark.parametrize("fmt, options", [
    ("GIF", {}),
    ("PNG", {}),  # APNG
    ("WEBP", {"lossless": True}),
])
def test_animation_gives_its_first_frame(tmp_path, fmt, options):
    first, *rest = frames()
    path = tmp_path / f"animated.{fmt.lower()}"
    first.save(path, fmt, save_all=True, append_images=rest, duration=100, loop=0, **options)
    assert pil_mode_and_frames(path)[1] == 3
    image = load_image(path)
    assert image.mode == "RGB" and image.getpixel((4, 4)) == RED


# ------------------------------------------------------------------------------------------ limits


def test_bomb_is_refused_from_the_header_without_decoding(monkeypatch):
    def refuse_to_decode(self):
        raise AssertionError("load() was called")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    limit_before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(ImageError, match=r"^image is 100000×100000 = 10000\.0 megapixels; "
                                             r"the limit is 40\.0 megapixels \(MMDEMO_MAX_PIXELS\)$"):
            load_image(png_declaring_size(100_000, 100_000))
    assert Image.MAX_IMAGE_PIXELS == limit_before  # PIL's own check is back on for everyone else


def test_image_between_our_limit_and_pils_is_refused_with_our_message(monkeypatch):
    monkeypatch.setenv("MMDEMO_MAX_PIXELS", "1000000")
    with pytest.raises(ImageError, match=r"image is 2000×2000 = 4\.0 megapixels; the limit is 1\.0 megapixels"):
        load_image(png_declaring_size(2000, 2000))


def test_explicit_max_pixels_applies_to_every_kind_of_source(tmp_path):
    path = tmp_path / "scene.png"
    scene().save(path)
    for source in (path, path.read_bytes(), scene(), np.asarray(scene())):
        with pytest.raises(ImageError, match=r"^image is 40×20 = 800 pixels; the limit is 799 pixels$"):
            load_image(source, max_pixels=799)
        assert load_image(source, max_pixels=800).size == (40, 20)


def test_max_pixels_from_the_environment_names_the_setting(monkeypatch):
    monkeypatch.setenv("MMDEMO_MAX_PIXELS", "500")
    with pytest.raises(ImageError, match=r"the limit is 500 pixels \(MMDEMO_MAX_PIXELS\)"):
        load_image(scene())


def test_upload_byte_limit(monkeypatch, tmp_path):
    data = encoded(scene(), "PNG")
    path = tmp_path / "scene.png"
    path.write_bytes(data)
    monkeypatch.setenv("MMDEMO_MAX_UPLOAD_BYTES", str(len(data) - 1))
    for source in (data, memoryview(data), path):
        with pytest.raises(ImageError, match=rf"is {len(data)} bytes; the limit is {len(data) - 1} bytes "
                                             r"\(MMDEMO_MAX_UPLOAD_BYTES\)"):
            load_image(source)
    with pytest.raises(ImageError, match=r"larger than the limit of .* \(MMDEMO_MAX_UPLOAD_BYTES\)"):
        load_image(io.BytesIO(data))
    monkeypatch.setenv("MMDEMO_MAX_UPLOAD_BYTES", str(len(data)))
    assert load_image(io.BytesIO(data)).size == (40, 20)


# ------------------------------------------------------------------------------------------ failures


def test_empty_bytes():
    with pytest.raises(ImageError, match="^the file is empty$"):
        load_image(b"")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageError, match="empty.png' is empty"):
        load_image(path)


def test_random_bytes_are_not_an_image():
    data = random.Random(0).randbytes(2000)
    with pytest.raises(ImageError, match="^the file " + NOT_AN_IMAGE):
        load_image(data)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a large red circle to the left of a small blue star\n")
    with pytest.raises(ImageError, match="notes.txt' " + NOT_AN_IMAGE):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    data = encoded(scene().resize((400, 200)), "JPEG")
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="^the image data in .*half.jpg' is truncated or corrupt$"):
        load_image(path)


def test_png_cut_inside_its_header_is_corrupt_not_unknown():
    with pytest.raises(ImageError, match="^the image data is truncated or corrupt$"):
        load_image(encoded(scene(), "PNG")[:20])


def test_missing_path():
    with pytest.raises(ImageError, match="^no such file: '/no/such/dir/photo.png'$"):
        load_image("/no/such/dir/photo.png")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_zero_size_pil_image():
    with pytest.raises(ImageError, match=r"zero width or height \(0×5\)"):
        load_image(Image.new("RGB", (0, 5)))


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL's TIFF metadata warnings about the damage
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF"])
def test_damaged_files_raise_only_image_error(fmt):
    """Flip bytes at random: every outcome is an RGB image or an ImageError, never a raw PIL or OS error."""
    data = encoded(scene(), fmt)
    rng = random.Random(fmt)
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            assert load_image(bytes(damaged)).mode == "RGB"
        except ImageError:
            pass


# ------------------------------------------------------------------------------------------ numpy


@pytest.mark.parametrize("array, expected", [
    (np.full((2, 3), 77, np.uint8), (77, 77, 77)),
    (np.full((2, 3, 1), 77, np.uint8), (77, 77, 77)),
    (np.full((2, 3, 3), (10, 20, 30), np.uint8), (10, 20, 30)),
    (np.full((2, 3, 4), (255, 0, 0, 0), np.uint8), WHITE),       # transparent → white
    (np.full((2, 3, 4), (255, 0, 0, 255), np.uint8), RED),
    (np.ones((2, 3), bool), WHITE),
    (np.zeros((2, 3, 1), bool), (0, 0, 0)),
    (np.full((2, 3), 65535, np.uint16), WHITE),
    (np.full((2, 3, 3), (0, 257 * 100, 1000), np.uint16), (0, 100, 4)),
    (np.full((2, 3, 3), (0.0, 0.5, 1.0), np.float32), (0, 128, 255)),
    (np.full((2, 3), 1.0, np.float64), WHITE),
    (np.full((2, 3, 3), (1.0, 0.0, 0.0), np.float16), RED),
])
def test_numpy_shapes_and_dtypes(array, expected):
    image = load_image(array)
    assert image.mode == "RGB" and image.size == (3, 2) and image.getpixel((2, 1)) == expected


def test_numpy_non_contiguous_view():
    array = np.asarray(scene())[:, ::-1]  # mirrored view
    assert load_image(array).getpixel((39, 0)) == RED


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0), (0, 0, 1)])
def test_numpy_zero_size(shape):
    with pytest.raises(ImageError, match="zero width or height"):
        load_image(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(5,), (5, 5, 2), (5, 5, 5), (2, 5, 5, 3)])
def test_numpy_wrong_shape(shape):
    with pytest.raises(ImageError, match=r"must be H×W, H×W×1, H×W×3 or H×W×4; got shape \("):
        load_image(np.zeros(shape, np.uint8))


def test_numpy_channels_first_gets_a_hint():
    with pytest.raises(ImageError, match=r"channels-first .* needs \.transpose\(1, 2, 0\)"):
        load_image(np.zeros((3, 8, 8), np.uint8))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint32, np.complex64, object])
def test_numpy_wrong_dtype(dtype):
    with pytest.raises(ImageError, match=r"must be uint8, bool, uint16 or float in \[0, 1\]; got"):
        load_image(np.zeros((4, 4, 3), dtype))


def test_numpy_float_outside_unit_range():
    with pytest.raises(ImageError, match=r"must hold values in \[0, 1\]; this one spans \[0, 255\]"):
        load_image(np.array([[0.0, 255.0]], np.float32))


def test_numpy_float_nan():
    with pytest.raises(ImageError, match="NaN or infinite"):
        load_image(np.array([[0.0, np.nan]], np.float32))


# ------------------------------------------------------------------------------------------ PNG bytes, hashes


def test_encode_png_is_deterministic_and_carries_no_metadata():
    plain = scene()
    decorated = scene()
    decorated.info.update({"dpi": (300, 300), "exif": b"Exif\x00\x00junk", "transparency": RED, "comment": "x"})
    data = encode_png(plain)
    assert data == encode_png(plain) == encode_png(scene()) == encode_png(decorated)
    assert png_chunks(data) == [b"IHDR", b"IDAT", b"IEND"]


def test_encode_png_round_trip():
    image = load_image(np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8))
    back = load_image(encode_png(image))
    assert back.tobytes() == image.tobytes() and content_hash(back) == content_hash(image)


def test_content_hash_is_of_size_and_pixels():
    image = scene()
    assert len(content_hash(image)) == 64 and content_hash(image) == content_hash(scene())
    other = scene()
    other.putpixel((20, 10), RED)
    assert content_hash(other) != content_hash(image)
    # same bytes, different shape: different hash
    wide = Image.new("RGB", (4, 1), RED)
    tall = Image.new("RGB", (1, 4), RED)
    assert wide.tobytes() == tall.tobytes() and content_hash(wide) != content_hash(tall)


def test_jpeg_and_its_png_copy_hash_equally():
    from_jpeg = load_image(encoded(scene(), "JPEG"))
    assert content_hash(load_image(encode_png(from_jpeg))) == content_hash(from_jpeg)


@pytest.mark.parametrize("function", [encode_png, content_hash])
def test_png_and_hash_want_rgb(function):
    with pytest.raises(ImageError, match="expected an RGB PIL image .*got mode RGBA"):
        function(scene().convert("RGBA"))
    with pytest.raises(ImageError, match="expected an RGB PIL image .*got ndarray"):
        function(np.zeros((2, 2, 3), np.uint8))

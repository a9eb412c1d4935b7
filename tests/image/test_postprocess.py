"""Pillow post-processing: any image in, a JPEG data URI of at most 1024 px out."""

from __future__ import annotations

import asyncio
import base64
import struct
import threading

import pytest
from PIL import Image
from tinychat_image.errors import ImageTooLarge, NotAnImage
from tinychat_image.postprocess import Limits, Workers, data_uri_bytes, process, to_data_uri

from .images import decode_data_uri, encoded, png_bomb

pytestmark = pytest.mark.timeout(30)


def rgba_half_transparent() -> Image.Image:
    image = Image.new("RGBA", (40, 20), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (20, 0, 40, 20))  # right half: blue but fully transparent
    return image


def test_rgba_transparency_is_composited_onto_white() -> None:
    result = decode_data_uri(process(encoded(rgba_half_transparent()), Limits()))
    assert result.mode == "RGB"
    assert result.size == (40, 20)
    red = result.getpixel((5, 10))
    white = result.getpixel((35, 10))
    assert red[0] > 240 and red[1] < 20 and red[2] < 20
    assert min(white) > 245  # not the hidden blue, not black


def test_half_transparent_pixels_blend_with_white() -> None:
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 128))
    pixel = decode_data_uri(process(encoded(image), Limits())).getpixel((8, 8))
    assert all(120 <= channel <= 135 for channel in pixel)


def test_la_transparency_is_composited_onto_white() -> None:
    image = Image.new("LA", (16, 16), (0, 0))
    assert min(decode_data_uri(process(encoded(image), Limits())).getpixel((8, 8))) > 245


def test_palette_with_transparent_index_is_composited_onto_white() -> None:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(0, (0, 0, 8, 16))  # left half: index 0, declared transparent below
    result = decode_data_uri(process(encoded(image, transparency=0), Limits()))
    assert min(result.getpixel((2, 8))) > 245
    green = result.getpixel((12, 8))
    assert green[1] > 240 and green[0] < 20


def test_palette_without_transparency_keeps_its_colours() -> None:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 10, 20, 250] + [0] * 762)
    pixel = decode_data_uri(process(encoded(image), Limits())).getpixel((8, 8))
    assert pixel[2] > 230 and pixel[0] < 30


def test_cmyk_jpeg_becomes_rgb() -> None:
    image = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    result = decode_data_uri(process(encoded(image, "JPEG"), Limits()))
    assert result.mode == "RGB"
    red = result.getpixel((16, 16))
    assert red[0] > 220 and red[1] < 40 and red[2] < 40


@pytest.mark.parametrize(("mode", "fmt", "order"), [("I;16", "PNG", "<"), ("I;16B", "TIFF", ">")])
def test_sixteen_bit_grey_is_scaled_not_clipped(mode: str, fmt: str, order: str) -> None:
    # Left half at half of the 16-bit range (mid grey, not white), right half at the top.
    values = [32768 if x < 16 else 65535 for _ in range(16) for x in range(32)]
    image = Image.frombytes(mode, (32, 16), struct.pack(f"{order}{len(values)}H", *values))
    result = decode_data_uri(process(encoded(image, fmt), Limits()))
    mid, top = result.getpixel((4, 8)), result.getpixel((28, 8))
    assert all(115 <= c <= 140 for c in mid), mid
    assert min(top) > 245


def test_thirty_two_bit_integer_image_is_scaled() -> None:
    image = Image.new("I", (16, 16), 40000)
    pixel = decode_data_uri(process(encoded(image, "TIFF"), Limits())).getpixel((8, 8))
    assert all(145 <= c <= 170 for c in pixel), pixel


def test_float_image_is_stretched_to_full_range() -> None:
    image = Image.new("F", (32, 16), 0.0)
    image.paste(1.0, (16, 0, 32, 16))
    result = decode_data_uri(process(encoded(image, "TIFF"), Limits()))
    assert max(result.getpixel((4, 8))) < 10
    assert min(result.getpixel((28, 8))) > 245


@pytest.mark.parametrize(
    ("mode", "fmt", "color"),
    [
        ("1", "PNG", 1),
        ("L", "PNG", 200),
        ("RGB", "PNG", (10, 200, 30)),
        ("RGB", "WEBP", (10, 200, 30)),
        ("RGB", "GIF", (10, 200, 30)),
        ("RGB", "BMP", (10, 200, 30)),
        ("YCbCr", "JPEG", (120, 60, 200)),
    ],
)
def test_other_modes_and_formats_become_rgb_jpeg(mode: str, fmt: str, color: object) -> None:
    result = decode_data_uri(process(encoded(Image.new(mode, (24, 24), color), fmt), Limits()))
    assert result.mode == "RGB"
    assert result.format == "JPEG"
    assert result.size == (24, 24)


def test_large_image_is_downscaled_to_1024_on_the_long_side() -> None:
    image = Image.new("RGB", (3000, 1500), (0, 128, 255))
    result = decode_data_uri(process(encoded(image, "JPEG"), Limits()))
    assert result.size == (1024, 512)


def test_tall_image_is_downscaled_keeping_its_aspect() -> None:
    image = Image.new("RGBA", (600, 2400), (0, 0, 0, 0))
    result = decode_data_uri(process(encoded(image), Limits()))
    assert result.size == (256, 1024)
    assert min(result.getpixel((128, 512))) > 245


def test_small_image_is_not_enlarged() -> None:
    assert decode_data_uri(process(encoded(Image.new("RGB", (300, 200))), Limits())).size == (300, 200)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="refused"):
        process(png_bomb(30000, 30000), Limits())


def test_image_over_the_pixel_limit_is_refused() -> None:
    # 8000x8000 is under Pillow's own bomb threshold; our own limit still refuses it.
    with pytest.raises(ImageTooLarge):
        process(png_bomb(8000, 8000), Limits(max_pixels=50_000_000))


def test_bomb_past_pillows_own_threshold_is_refused_even_with_a_lax_limit() -> None:
    with pytest.raises(ImageTooLarge):
        process(png_bomb(20000, 20000), Limits(max_pixels=10**12))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"hello, I am text",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
    ],
)
def test_non_images_are_refused(raw: bytes) -> None:
    with pytest.raises(NotAnImage):
        process(raw, Limits())


def test_truncated_image_is_refused() -> None:
    whole = encoded(Image.effect_noise((256, 256), 64).convert("RGB"), "PNG")
    with pytest.raises(NotAnImage):
        process(whole[: len(whole) // 2], Limits())


def test_data_uri_must_be_base64() -> None:
    with pytest.raises(NotAnImage):
        data_uri_bytes("data:image/png,plain", 1024)
    with pytest.raises(NotAnImage):
        data_uri_bytes("data:image/png;base64,!!!notbase64", 1024)
    raw = b"\x01\x02\x03"
    assert data_uri_bytes("data:image/png;base64," + base64.b64encode(raw).decode(), 1024) == raw


def test_data_uri_over_the_byte_cap_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge):
        data_uri_bytes("data:image/png;base64," + "A" * 4000, 1024)


async def test_processing_runs_off_the_event_loop_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = encoded(rgba_half_transparent())
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = Image.Image.save

    def recording_save(self: Image.Image, *args: object, **kwargs: object) -> None:
        seen.append(threading.get_ident())
        original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", recording_save)
    await asyncio.wait_for(to_data_uri(raw, Limits(), Workers(0)), 10)
    assert seen and loop_thread not in seen


async def test_worker_processes_return_the_image_and_raise_readable_errors() -> None:
    workers = Workers(1)
    try:
        uri = await asyncio.wait_for(to_data_uri(encoded(rgba_half_transparent()), Limits(), workers), 20)
        assert min(decode_data_uri(uri).getpixel((35, 10))) > 245
        with pytest.raises(NotAnImage):
            await asyncio.wait_for(to_data_uri(b"not an image", Limits(), workers), 20)
        with pytest.raises(ImageTooLarge):
            await asyncio.wait_for(to_data_uri(png_bomb(30000, 30000), Limits(), workers), 20)
    finally:
        await workers.close()


def test_base64_text_is_decoded_as_part_of_processing() -> None:
    raw = encoded(rgba_half_transparent())
    as_text = base64.b64encode(raw).decode()
    assert process(as_text, Limits()) == process(raw, Limits())
    assert process("data:image/png;base64," + as_text, Limits()) == process(raw, Limits())

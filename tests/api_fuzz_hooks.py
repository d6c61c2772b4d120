"""Schemathesis hooks for the API fuzz test: what a valid screenshot is.

A JSON Schema cannot say "a decodable PNG", so the fuzzer is told: the multipart ``image``
part (``format: binary``, media types image/png, image/jpeg, image/webp) and the JSON ``image``
string (``format: byte``, base64) are drawn from real screenshots of varied size, colour and
format. Everything else is generated from the OpenAPI document as it stands.
Loaded by ``schemathesis run`` through ``SCHEMATHESIS_HOOKS``.
"""

from __future__ import annotations

import base64
import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image, ImageDraw


def screenshot(width: int, height: int, shade: int, fmt: str) -> bytes:
    image = Image.new("RGB", (width, height), (shade, 255 - shade, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, height // 8), fill=(30, 90, 200))  # a title bar
    draw.rectangle((width // 10, height * 3 // 4, width * 9 // 10, height * 4 // 5), outline=(0, 0, 0))  # a field
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def screenshots(fmt: str) -> st.SearchStrategy[bytes]:
    # Tiny to phone-like, within the server's aspect limit (8:1).
    sizes = st.tuples(st.integers(1, 96), st.integers(1, 4)).map(lambda wh: (wh[0], wh[0] * wh[1]))
    return st.builds(lambda size, shade: screenshot(size[0], size[1], shade, fmt), sizes, st.integers(0, 255))


ANY_SCREENSHOT = st.one_of(screenshots("PNG"), screenshots("JPEG"), screenshots("WEBP"))

schemathesis.openapi.media_type("image/png", screenshots("PNG"))
schemathesis.openapi.media_type("image/jpeg", screenshots("JPEG"))
schemathesis.openapi.media_type("image/webp", screenshots("WEBP"))
# The only "binary" and "byte" strings of this API are the screenshot (file part, base64).
schemathesis.openapi.format("binary", ANY_SCREENSHOT)
schemathesis.openapi.format("byte", ANY_SCREENSHOT.map(lambda data: base64.b64encode(data).decode("ascii")))

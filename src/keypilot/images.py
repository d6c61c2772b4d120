"""Screenshots from files or uploaded bytes: the one loader of the CLI, the server and the predictors.

Every screenshot a user hands KeyPilot goes through ``decode_screenshot`` (bytes) or
``read_screenshot`` (a file), so ``keypilot predict`` and the HTTP API see the same pixels for
the same photo: checked against ``ImageLimits`` from the header before any pixel is decoded
(a decompression bomb never reaches the decoder), turned upright by its EXIF orientation (as
phones store rotation), and converted to RGB. Anything else is an ``ImageRejected`` whose
message says what is wrong.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a phone screenshot plausibly comes in. Anything else (TIFF, PSD, ICO ...) only
# widens the decoder attack surface.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
EXIF_ORIENTATION = 0x0112


class ImageRejected(ValueError):
    """Not a usable screenshot. ``status`` is what a server answers: 413 when over a size limit, else 400."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 25_000_000
    # No phone screen is a 1 x 5000 strip. Small images are fine: letterboxing scales them up.
    max_aspect: float = 8.0


def decode_screenshot(data: bytes, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Decode ``data`` into an upright RGB image, checking size and shape from the header first."""
    if not data:
        raise ImageRejected("the image is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"the image is {len(data)} bytes; the limit is {limits.max_bytes}", status=413)
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageRejected(
                    f"the image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}",
                    status=413,
                )
            if max(width, height) > limits.max_aspect * min(width, height):
                raise ImageRejected(f"the image is {width}x{height}; the aspect ratio may be at most {limits.max_aspect:g}:1")
            image.load()
            if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"the image declares too many pixels: {exc}", status=413) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(f"not an image in an accepted format ({', '.join(ALLOWED_FORMATS)})") from exc
    except Exception as exc:  # noqa: BLE001
        # Truncated or corrupt data surfaces as OSError, ValueError, SyntaxError, EOFError,
        # struct.error ... depending on the codec and the damage: all mean "undecodable".
        raise ImageRejected(f"the image could not be decoded: {exc}") from exc


def read_screenshot(path: str | os.PathLike, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """``decode_screenshot`` of a file; the error names the file (``ImageRejected`` for every problem)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageRejected(f"{path}: not a file")
        if size > limits.max_bytes:
            raise ImageRejected(f"{path}: the image is {size} bytes; the limit is {limits.max_bytes}", status=413)
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageRejected(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageRejected(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return decode_screenshot(data, limits)
    except ImageRejected as exc:
        raise ImageRejected(f"{path}: {exc}", exc.status) from exc.__cause__


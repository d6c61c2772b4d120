"""Uploaded screenshots: validation before decoding, and a store of recent screens.

A client types many keystrokes on one screenshot. It uploads the image once, gets back a
``screen_id`` (a hash of the uploaded bytes) and sends that id with every later keystroke.
The store hands the predictor the very same decoded image object each time, so the
predictor's screen cache (keyed by the image's hash) hits on every keystroke after the first.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a phone screenshot plausibly comes in. Anything else (TIFF, PSD, ICO ...) only
# widens the decoder attack surface.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")


class ImageRejected(ValueError):
    """An upload that is not a usable screenshot; ``status`` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 25_000_000
    min_side: int = 16
    # The model letterboxes to 2:1 (H:W); a 1 x 5000 strip would letterbox to zero width.
    max_aspect: float = 8.0


def screen_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def decode_screenshot(data: bytes, limits: ImageLimits) -> Image.Image:
    """Decode ``data`` into an RGB image, checking size and shape from the header first.

    ``Image.open`` reads only the header, so a decompression bomb (a small file declaring a
    huge canvas) is refused before any pixel is decoded.
    """
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
            if min(width, height) < limits.min_side:
                raise ImageRejected(f"the image is {width}x{height}; each side must be at least {limits.min_side} pixels")
            if max(width, height) > limits.max_aspect * min(width, height):
                raise ImageRejected(f"the image is {width}x{height}; the aspect ratio may be at most {limits.max_aspect:g}:1")
            image.load()
            # Phones store rotation in EXIF; the model must see the screen upright.
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"the image declares too many pixels: {exc}", status=413) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(f"not an image in an accepted format ({', '.join(ALLOWED_FORMATS)})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated or corrupt data surfaces as any of these depending on the codec.
        raise ImageRejected(f"the image could not be decoded: {exc}") from exc


class ScreenStore:
    """Thread-safe LRU of decoded screenshots by ``screen_id``, bounded by decoded bytes."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, screen_id: str) -> Image.Image | None:
        with self._lock:
            image = self._images.get(screen_id)
            if image is not None:
                self._images.move_to_end(screen_id)
            return image

    def put(self, screen_id: str, image: Image.Image) -> Image.Image:
        """Store ``image``; if the id is already there, keep and return the stored object."""
        with self._lock:
            stored = self._images.get(screen_id)
            if stored is not None:
                self._images.move_to_end(screen_id)
                return stored
            self._images[screen_id] = image
            self._bytes += _decoded_size(image)
            while self._bytes > self.max_bytes and len(self._images) > 1:
                _, evicted = self._images.popitem(last=False)
                self._bytes -= _decoded_size(evicted)
            return image

    def __len__(self) -> int:
        return len(self._images)


def _decoded_size(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())

"""Input preparation shared by training and inference: both build on this module, it on neither.

The model sees exactly what training fed it (``docs/contracts.md``, "Batches"): the screenshot
letterboxed to ``H x W`` with black bars as float32 RGB in [0, 1], and ``[CLS]`` followed by the
last ``L - 1`` context tokens. ``keypilot.data.dataset`` builds its batches from the functions
here and both predictors their inputs, so training and inference cannot drift apart. A
screenshot given as a file is read by ``keypilot.images`` (the loader the server uses too).
This module must not import torch (the ONNX predictor runs without it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import xxhash
from PIL import Image

from keypilot.images import read_screenshot
from keypilot.tokenizer import KeyPilotTokenizer

ImageInput = str | Path | Image.Image | np.ndarray


def letterbox(image: Image.Image, height: int, width: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Fit ``image`` inside ``height`` x ``width`` keeping its aspect ratio, centred on black.

    Returns the RGB array ``[3, height, width]`` float32 in [0, 1], the scale applied to the
    original pixels and the ``(pad_x, pad_y)`` offset of the resized image: a point ``(x, y)``
    of the original lands at ``(x * scale + pad_x, y * scale + pad_y)``.
    """
    # No JPEG draft (reduced-scale) decoding: it would be faster but would make training
    # pixels differ from the predictor's, which letterboxes already-decoded images.
    image = image.convert("RGB")
    src_w, src_h = image.size
    scale = min(height / src_h, width / src_w)
    new_w = max(1, min(width, round(src_w * scale)))
    new_h = max(1, min(height, round(src_h * scale)))
    if (new_w, new_h) != (src_w, src_h):
        # reducing_gap: shrink by an integer factor first (fast), then filter the rest.
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = np.asarray(image)
    array = canvas.transpose(2, 0, 1).astype(np.float32) / 255.0
    return array, scale, (pad_x, pad_y)


def letterbox_array(image: Image.Image, height: int, width: int) -> np.ndarray:
    """``letterbox``'s pixels alone (inference has no ROI boxes to map): ``3 x H x W`` float32 in [0, 1]."""
    return letterbox(image, height, width)[0]


def context_tokens(cls_id: int, token_ids: Sequence[int], max_tokens: int) -> list[int]:
    """``[CLS]`` + the last ``max_tokens - 1`` of ``token_ids``, unpadded. The end of the field
    is kept: it is where the user is typing."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1 (room for [CLS])")
    kept = list(token_ids[len(token_ids) - (max_tokens - 1) :]) if max_tokens > 1 else []
    return [cls_id, *kept]


# Tokens of the message being answered that an empty field's context carries.
MAX_REPLY_TOKENS = 32


def field_tokens(tokenizer: KeyPilotTokenizer, text: str, reply_to: str = "") -> list[int]:
    """The text encoder's tokens for the field's text (no ``[CLS]``, no padding).

    On an empty field, the suggested reply is conditioned on the last incoming message on the
    screen (``keypilot.priors.screen``): its last ``MAX_REPLY_TOKENS`` tokens, then ``[SEP]``,
    then the field's (white space) text. Otherwise the field's text alone.
    """
    ids = tokenizer.encode(text)
    if reply_to and not text.strip():
        return tokenizer.encode(reply_to)[-MAX_REPLY_TOKENS:] + [tokenizer.sep_id] + ids
    return ids


def context_ids(tokenizer: KeyPilotTokenizer, text: str, max_tokens: int, reply_to: str = "") -> np.ndarray:
    """``context_tokens`` of ``field_tokens(text, reply_to)``: int64 ``[n]``, ``n <= max_tokens``, no padding.

    Padding is left out on purpose: the text encoder masks it and reads only the ``[CLS]``
    position, so the padded and unpadded sequences give the same result and the shorter one
    is cheaper.
    """
    return np.asarray(context_tokens(tokenizer.cls_id, field_tokens(tokenizer, text, reply_to), max_tokens),
                      dtype=np.int64)


def to_pil(image: ImageInput) -> Image.Image:
    """A path, a PIL image or an ``H x W x 3`` uint8 array as a PIL image.

    A path is read by ``keypilot.images.read_screenshot`` (checked, EXIF-upright, RGB), as the
    server reads uploads; a bad file raises ``ImageRejected`` naming it.
    """
    if isinstance(image, (str, Path)):
        return read_screenshot(image)
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image array must be H x W x 3 uint8, got {array.shape} {array.dtype}")
    return Image.fromarray(array)


def image_key(image: ImageInput) -> str:
    """Cache key of a screenshot: a 128-bit hash of its content (file bytes, or pixels with size
    and mode).

    XXH3, not a cryptographic digest: it runs at every keystroke that passes pixels. With
    Pillow's copy of the pixels, a 360 x 640 screenshot took 0.52 ms with SHA-1 and 0.13 with
    XXH3, a 1080 x 2340 one 7.2 and 2.3 ms; and hashlib's OpenSSL adds 3.5 MB to the predictor. A cached encoding is only ever served for pixels with the same
    hash, so a collision would need someone to hold the other screenshot already.
    """
    digest = xxhash.xxh3_128()
    if isinstance(image, (str, Path)):
        digest.update(Path(image).read_bytes())
    elif isinstance(image, Image.Image):
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    else:
        array = np.ascontiguousarray(image)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def cache_key(image: ImageInput, screen_key: str | None = None) -> str:
    """The screen cache's key: the caller's id for the screenshot, else a hash of its content.
    The prefix keeps such ids apart from content hashes, so a caller's id can never return
    another screenshot's encoding."""
    return image_key(image) if screen_key is None else f"id:{screen_key}"


# Encoded screens kept per predictor. A keyboard needs one or two, but the server answers
# many users whose screens interleave, and an evicted screen costs a full encoder run.
SCREEN_CACHE_SIZE = 64

Encoded = TypeVar("Encoded")


class ScreenCache(Generic[Encoded]):
    """LRU of encoded screens, keyed by the screenshot's content or by a caller's id for it."""

    def __init__(self, size: int = SCREEN_CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError(f"cache_size must be at least 1, got {size}")
        self.size = size
        self._screens: OrderedDict[str, Encoded] = OrderedDict()

    def get(self, image: ImageInput, encode: Callable[[ImageInput], Encoded],
            screen_key: str | None = None, key: str | None = None) -> tuple[Encoded, bool]:
        """The encoded screen and whether it came from the cache; ``encode`` runs on a miss.

        ``screen_key`` (an id that names these pixels and no others, such as the server's
        ``screen_id``) replaces hashing the pixels; ``key`` is an already computed ``cache_key``.
        """
        key = key or cache_key(image, screen_key)
        if key in self._screens:
            self._screens.move_to_end(key)
            return self._screens[key], True
        encoded = encode(image)
        self._screens[key] = encoded
        if len(self._screens) > self.size:
            self._screens.popitem(last=False)
        return encoded, False

    def clear(self) -> None:
        self._screens.clear()

    def __len__(self) -> int:
        return len(self._screens)


"""Torch-free input preparation shared by the ONNX predictor, export calibration and the bench.

The model sees exactly what training fed it (``docs/contracts.md``, "Batches"): the screenshot
letterboxed to ``H x W`` with black bars as float32 RGB in [0, 1], and ``[CLS]`` followed by the
last ``L - 1`` context tokens. ``tests/test_onnx_predictor.py`` checks both against
``keypilot.data.dataset`` so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from keypilot.tokenizer import KeyPilotTokenizer

ImageInput = str | Path | Image.Image | np.ndarray


def letterbox_array(image: Image.Image, height: int, width: int) -> np.ndarray:
    """``image`` scaled to fit ``height x width`` (aspect kept), centred on black: ``3 x H x W`` float32 in [0, 1].

    Pixel for pixel what ``keypilot.data.dataset.letterbox`` gives training (that module
    imports torch, this one must not); the resize uses the same filter and ``reducing_gap``.
    """
    image = image.convert("RGB")
    scale = min(height / image.height, width / image.width)
    size = (max(1, min(width, round(image.width * scale))), max(1, min(height, round(image.height * scale))))
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    left, top = (width - size[0]) // 2, (height - size[1]) // 2
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[top : top + size[1], left : left + size[0]] = np.asarray(image)
    return canvas.transpose(2, 0, 1).astype(np.float32) / 255.0


def context_ids(tokenizer: KeyPilotTokenizer, text: str, max_tokens: int) -> np.ndarray:
    """``[CLS]`` + the last ``max_tokens - 1`` tokens of ``text``: int64 ``[n]``, ``n <= max_tokens``, no padding.

    Padding is left out on purpose: the text encoder masks it and reads only the ``[CLS]``
    position, so the padded and unpadded sequences give the same result and the shorter one
    is cheaper.
    """
    ids = tokenizer.encode(text)[-(max_tokens - 1):] if max_tokens > 1 else []
    return np.asarray([tokenizer.cls_id, *ids], dtype=np.int64)


def to_pil(image: ImageInput) -> Image.Image:
    """A path, a PIL image or an ``H x W x 3`` uint8 array as a PIL image."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            return opened.convert("RGB")
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image array must be H x W x 3 uint8, got {array.shape} {array.dtype}")
    return Image.fromarray(array)


def image_key(image: ImageInput) -> str:
    """Cache key of a screenshot: a hash of its content (file bytes, or pixels with size and mode)."""
    # SHA-1 was the fastest hashlib digest here (~5 ms for a 1080 x 2340 screenshot).
    digest = hashlib.sha1(usedforsecurity=False)
    if isinstance(image, (str, Path)):
        digest.update(Path(image).read_bytes())
    elif isinstance(image, Image.Image):
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    else:
        array = np.ascontiguousarray(image)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()

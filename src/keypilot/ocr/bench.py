"""Recognition cost per new screen, for ``keypilot bench infer`` (and docs/screen-text.md).

Each sample screenshot is read twice by one ``ScreenReader``: as stored, and upscaled to a
phone's 1080-pixel width (1080 x 2340 for a 9:19.5 screen), the size a real Android screenshot
has. Reads go as the server runs them: no record ROIs, so the keyboard is found from the
detected boxes. One warm-up read first (session start-up, lazy allocations), then one timed
read per screen and size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

PHONE_WIDTH = 1080


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def phone_size(image: Image.Image) -> Image.Image:
    """``image`` upscaled to a phone's 1080-pixel width."""
    height = round(image.height * PHONE_WIDTH / image.width)
    return image.resize((PHONE_WIDTH, height), Image.Resampling.LANCZOS)


def measure_recognition(screens: Sequence[Path], threads: int = 1) -> dict[str, Any]:
    """``{"threads", "screens", "sizes": {"stored"|"1080w": {"p50_ms", "p95_ms", "lines", "size"}}}``,
    or ``{"error": reason}`` when the ``ocr`` extra is not installed."""
    from keypilot.images import read_screenshot
    from keypilot.ocr import OcrUnavailable, ScreenReader

    try:
        reader = ScreenReader(threads=threads)
    except OcrUnavailable as exc:
        return {"error": str(exc)}
    images = {"stored": [read_screenshot(path) for path in screens]}
    images["1080w"] = [phone_size(image) for image in images["stored"]]
    reader.read(images["1080w"][0])  # warm-up
    sizes: dict[str, Any] = {}
    for name, batch in images.items():
        times, lines = [], []
        for image in batch:
            start = time.perf_counter()
            read = reader.read(image)
            times.append(1000 * (time.perf_counter() - start))
            lines.append(len(read))
        sizes[name] = {"p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1),
                       "lines": round(sum(lines) / len(lines), 1),
                       "size": f"{batch[0].width}x{batch[0].height}"}
    return {"threads": threads, "screens": len(screens), "sizes": sizes}


def format_recognition(figures: dict[str, Any]) -> str:
    if "error" in figures:
        return f"screen-text recognition: not measured ({figures['error']})"
    lines = [f"screen-text recognition per new screen ({figures['screens']} screens, {figures['threads']} thread(s), "
             "rapidocr PP-OCRv6 small, keyboard found from the boxes)",
             f"{'screens':<40}{'p50 ms':>9}{'p95 ms':>9}{'lines':>7}"]
    labels = {"stored": "as stored", "1080w": "upscaled to 1080 wide"}
    for name, row in figures["sizes"].items():
        label = f"{labels[name]} (e.g. {row['size']})"
        lines.append(f"{label:<40}{row['p50_ms']:>9.0f}{row['p95_ms']:>9.0f}{row['lines']:>7.1f}")
    lines.append("target: p50 <= 300 ms per new full-size screenshot at 1 thread")
    return "\n".join(lines)

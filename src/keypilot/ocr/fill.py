"""``keypilot data ocr DATA``: fill the ``screen_text`` field of records that lack it.

The data set is validated first (every bad record reported as ``file:line: reason``, nothing
written). Then each JSONL file is rewritten with the field added where it was missing (every
record with ``--force``): each record's JSON object is kept as it was apart from that field,
blank lines stay, and the new file replaces the old one atomically (a temporary file in the
same folder, fsynced, then renamed), so an interrupted run leaves the old file whole. Each
screenshot is read once however many records name it (a data set has several keystrokes per
screen), with the keyboard and focused field boxes of the first record naming it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keypilot.atomic import atomic_write_text
from keypilot.screen_text import ScreenText, to_json

if TYPE_CHECKING:
    from keypilot.data.format import Record
    from keypilot.ocr.reader import ScreenReader


@dataclass
class FillReport:
    files: int = 0
    records: int = 0
    filled: int = 0
    kept: int = 0
    screens_read: int = 0


def fill_screen_text(data: str | os.PathLike, force: bool = False, reader=None, progress: bool = True) -> FillReport:
    """Add ``screen_text`` to every record of ``data`` (a JSONL file or a folder of them) that
    has none (every record with ``force``). Raises ``DataFormatError`` on a bad data set and
    ``OcrUnavailable`` without the ``ocr`` extra, both before anything is written."""
    from keypilot.data.format import jsonl_files, read_records
    from keypilot.ocr.reader import ScreenReader

    records = read_records(data)  # raises with every file:line problem; nothing is written then
    todo = [r for r in records if force or r.screen_text is None]
    report = FillReport(records=len(records), kept=len(records) - len(todo))
    if not todo:
        return report
    read = read_screens(todo, reader or ScreenReader(), progress)
    report.screens_read = len(read)
    for path in jsonl_files(data):
        changed = _rewrite(path, {r.line: to_json(read[r.image]) for r in todo if r.file == str(path)})
        report.files += changed > 0
        report.filled += changed
    return report


def read_screens(records: list[Record], reader: ScreenReader, progress: bool = True) -> dict[Path, list[ScreenText]]:
    """The screen text of each distinct screenshot of ``records``, read once (the keyboard cut
    at the first record's ``rois.keyboard``, lines near its ``input_field`` read first). A bad
    image raises ``DataFormatError`` naming the record's ``file:line``."""
    from tqdm import tqdm

    from keypilot.data.format import DataFormatError
    from keypilot.images import ImageRejected, read_screenshot

    first: dict[Path, Record] = {}
    for r in records:
        first.setdefault(r.image, r)
    read: dict[Path, list[ScreenText]] = {}
    for image, record in tqdm(first.items(), desc="data ocr", unit="screen", disable=None if progress else True,
                              file=sys.stderr):
        try:
            screenshot = read_screenshot(image)
        except ImageRejected as exc:
            raise DataFormatError(f"{record.file}:{record.line}: {exc}") from exc
        rois = record.rois
        read[image] = reader.read(screenshot, keyboard=_box(rois.get("keyboard")), field=_box(rois.get("input_field")))
    return read


def _box(box) -> tuple[float, float, float, float] | None:
    return tuple(float(v) for v in box) if box else None


def _rewrite(path: Path, values: dict[int, list[dict]]) -> int:
    """Write ``path`` again with ``screen_text`` set on the lines (1-based) in ``values``."""
    if not values:
        return 0
    # Split on "\n" only, as the reader counts lines (a JSON string may hold U+2028).
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, value in values.items():
        obj = json.loads(lines[number - 1])
        obj["screen_text"] = value
        lines[number - 1] = json.dumps(obj, ensure_ascii=False)
    atomic_write_text(path, "\n".join(lines))
    return len(values)

"""The KeyPilot record format (``docs`` spec "data-format"): schema, validation, reading.

A data set is one ``.jsonl`` file or a folder of them; each line is one JSON object naming a
screenshot (relative to the JSONL file's folder), the typed context and the labels. Every
problem is reported as ``file:line: reason`` (1-based line, the file path as given), so a user
can fix their own logs. ``read_records`` feeds training; ``check_dataset`` backs
``keypilot data check``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from keypilot.labels import ACTION_TO_TASK, LAYOUTS, ROI_KEYS, TASKS, lang_of
from keypilot.screen_text import ScreenText, parse_screen_text

log = logging.getLogger(__name__)

REQUIRED_FIELDS: tuple[str, ...] = ("id", "image", "context", "task", "target", "layout")
OPTIONAL_FIELDS: tuple[str, ...] = ("prev_layout", "lang", "user_id", "rois", "action", "session", "step", "renderer", "scenario",
                                  "screen_text")
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG")


class DataFormatError(ValueError):
    """A data set has bad records; the message lists each as ``file:line: reason``."""


@dataclass
class Record:
    """One validated sample.

    ``rois`` always holds every key of ``ROI_KEYS``: a box ``[x0, y0, x1, y1]`` in pixels of
    the original image, or ``None`` when that element is absent. ``file``/``line`` say where
    the record came from (for error messages downstream).
    """

    id: str
    image: Path
    context: str
    task: str
    target: str
    layout: str
    prev_layout: str = "EN"
    lang: str | None = None  # None only for records built by hand: means lang_of(target)
    user_id: int | None = None
    rois: dict[str, list[float] | None] = field(default_factory=lambda: {k: None for k in ROI_KEYS})
    action: str | None = None
    session: str | None = None
    step: int | None = None
    renderer: str | None = None  # who drew the screenshot (the generator writes "pil" or "html")
    scenario: str | None = None  # the kind of screen and typing, e.g. "chat-en", "otp"
    # The text on the screen (``keypilot.screen_text``): None when the record has no such field
    # (recognition fills it), [] when the screen was read and holds no text.
    screen_text: list[ScreenText] | None = None
    file: str = ""
    line: int = 0


class Records(list):
    """``list[Record]`` returned by ``read_records``; ``skipped`` counts the bad records left
    out with ``skip_bad=True`` and ``problems`` lists their ``file:line: reason`` lines."""

    def __init__(self, records: list[Record], skipped: int = 0, problems: list[str] | None = None):
        super().__init__(records)
        self.skipped = skipped
        self.problems = problems or []


@dataclass
class CheckReport:
    """What ``check_dataset`` found. ``ok`` is False when any record (or the path) is bad."""

    ok: bool
    problems: list[str]
    files: dict[str, tuple[int, int]]  # file -> (records ok, records bad)
    distributions: dict[str, Counter]

    @property
    def num_ok(self) -> int:
        return sum(good for good, _ in self.files.values())

    @property
    def num_bad(self) -> int:
        return sum(bad for _, bad in self.files.values())


def jsonl_files(path: str | os.PathLike) -> list[Path]:
    """The ``.jsonl`` file ``path`` itself, or every ``*.jsonl`` of the folder ``path`` (sorted)."""
    p = Path(path)
    if p.is_dir():
        return sorted(q for q in p.glob("*.jsonl") if q.is_file())
    if p.is_file():
        return [p]
    raise FileNotFoundError(f"{p}: no such file or folder")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true is a Python bool, an int subclass


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _image_info(path: Path) -> tuple[int, int] | str:
    """(width, height) of a readable portrait PNG/JPEG, else the reason it is unusable."""
    if not path.exists():
        return f"image not found: {path}"
    if not path.is_file():
        return f"image is not a file: {path}"
    try:
        with Image.open(path) as im:
            if im.format not in IMAGE_FORMATS:
                return f"image is {im.format}, not PNG or JPEG: {path}"
            width, height = im.size
            if im.format == "JPEG":
                # Decoding at 1/8 scale still reads every byte (truncation is caught), 3x faster.
                im.draft(im.mode, (width // 8, height // 8))
            # A full decode: Image.verify() does not notice a truncated file.
            im.load()
    except Exception as exc:  # PIL raises many types for corrupt files; all mean "unreadable"
        return f"image unreadable ({type(exc).__name__}: {exc}): {path}"
    if width > height:
        return f"image is landscape ({width}x{height}), screenshots must be portrait: {path}"
    return width, height


def _check_images(paths: set[Path]) -> dict[Path, tuple[int, int] | str]:
    """Decode every distinct image once; Pillow releases the GIL while decoding, so threads help."""
    ordered = sorted(paths)
    workers = min(8, os.cpu_count() or 1, max(1, len(ordered)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(ordered, pool.map(_image_info, ordered)))


def _label(obj: dict, key: str, allowed: tuple[str, ...], problems: list[str]) -> None:
    value = obj[key]
    if value not in allowed:
        problems.append(f"{key} {value!r} is not one of {', '.join(allowed)}")


def _check_rois(rois: Any, problems: list[str]) -> dict[str, list[float] | None]:
    """Shape checks of ``rois``; bounds against the image come later (needs its size)."""
    out: dict[str, list[float] | None] = {k: None for k in ROI_KEYS}
    if not isinstance(rois, dict):
        problems.append(f"rois must be an object, got {type(rois).__name__}")
        return out
    for key, box in rois.items():
        if key not in ROI_KEYS:
            problems.append(f"unknown roi {key!r} (expected {', '.join(ROI_KEYS)})")
            continue
        if box is None:
            continue
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            problems.append(f"roi {key} must be null or 4 numbers [x0, y0, x1, y1], got {json.dumps(box)}")
            continue
        x0, y0, x1, y1 = box
        if x0 >= x1 or y0 >= y1:
            problems.append(f"roi {key} {box} is empty or inverted (needs x0 < x1 and y0 < y1)")
            continue
        out[key] = list(box)
    return out


def _parse(obj: Any, folder: Path, file: str, line: int) -> tuple[Record | None, list[str]]:
    """A ``Record`` from one decoded JSON value and the reasons it is bad (image not yet checked).

    The record is None when a field is missing or has the wrong type.
    """
    if not isinstance(obj, dict):
        return None, [f"record must be a JSON object, got {type(obj).__name__}"]
    problems: list[str] = []
    unknown = sorted(set(obj) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        problems.append(f"unknown field(s): {', '.join(unknown)}")
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        problems.append(f"missing required field(s): {', '.join(missing)}")
    num_structural = len(problems)
    for key in REQUIRED_FIELDS + ("prev_layout", "lang", "action", "session", "renderer", "scenario"):
        if key in obj and not isinstance(obj[key], str) and not (key in OPTIONAL_FIELDS and obj[key] is None):
            problems.append(f"{key} must be a string, got {type(obj[key]).__name__}")
    if len(problems) > num_structural or missing:
        return None, problems  # the checks below assume every field is there with its type

    for key in ("id", "image", "target"):
        if not obj[key]:
            problems.append(f"{key} is empty")
    _label(obj, "task", TASKS, problems)
    _label(obj, "layout", LAYOUTS, problems)
    for key in ("prev_layout", "lang"):
        if obj.get(key) is not None:
            _label(obj, key, LAYOUTS, problems)
    action = obj.get("action")
    if action is not None:
        if action not in ACTION_TO_TASK:
            problems.append(f"action {action!r} is not one of {', '.join(ACTION_TO_TASK)}")
        elif ACTION_TO_TASK[action] != obj["task"]:
            problems.append(f"action {action!r} implies task {ACTION_TO_TASK[action]!r}, not {obj['task']!r}")
    user_id = obj.get("user_id")
    if user_id is not None and not (_is_int(user_id) and user_id >= 0):
        problems.append(f"user_id must be an integer >= 0, got {json.dumps(user_id)}")
    step = obj.get("step")
    if step is not None and not (_is_int(step) and step >= 0):
        problems.append(f"step must be an integer >= 0, got {json.dumps(step)}")
    rois = _check_rois(obj["rois"], problems) if obj.get("rois") is not None else {k: None for k in ROI_KEYS}
    screen_text = None
    if obj.get("screen_text") is not None:
        screen_text, text_problems = parse_screen_text(obj["screen_text"])
        problems += text_problems

    # Built even when labels are bad, so the image and ROI bounds are still checked and
    # every problem of the line is reported at once.
    record = Record(
        id=obj["id"],
        image=(folder / obj["image"]).absolute(),
        context=obj["context"],
        task=obj["task"],
        target=obj["target"],
        layout=obj["layout"],
        prev_layout=obj.get("prev_layout") or "EN",
        lang=obj.get("lang") or lang_of(obj["target"]),
        user_id=user_id,
        rois=rois,
        action=action,
        session=obj.get("session"),
        step=step,
        renderer=obj.get("renderer"),
        scenario=obj.get("scenario"),
        screen_text=screen_text,
        file=file,
        line=line,
    )
    return record, problems


def _image_problems(record: Record, info: tuple[int, int] | str) -> list[str]:
    if isinstance(info, str):
        return [info]
    width, height = info
    return [
        f"roi {key} {box} lies outside the {width}x{height} image"
        for key, box in record.rois.items()
        if box is not None and not (0 <= box[0] and 0 <= box[1] and box[2] <= width and box[3] <= height)
    ] + [
        f"screen_text box {list(line.box)} ({line.text[:20]!r}) lies outside the {width}x{height} image"
        for line in record.screen_text or ()
        if not (-1 <= line.box[0] and -1 <= line.box[1] and line.box[2] <= width + 1 and line.box[3] <= height + 1)
    ]


def _scan(path: str | os.PathLike, check_images: bool) -> tuple[list[Record], list[str], dict[str, tuple[int, int]]]:
    """Parse and validate every record under ``path``.

    Returns the good records, every problem as ``file:line: reason`` (in file/line order)
    and, per file, (records ok, records bad).
    """
    given = Path(path)
    files = jsonl_files(given)
    pending: list[tuple[Record, list[str]]] = []  # image not yet checked
    bad_lines: dict[tuple[str, int], list[str]] = {}
    counts: dict[str, int] = {}
    for file in files:
        name = str(file)  # keeps the path as the user gave it (plus the file name for a folder)
        counts[name] = 0
        seen_ids: dict[str, int] = {}
        with open(file, "rb") as fh:  # decoded line by line, so one non-UTF-8 line is named, not fatal
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                counts[name] += 1
                try:
                    text = raw.decode("utf-8")
                    obj = json.loads(text)
                except UnicodeDecodeError as exc:
                    bad_lines[(name, line_no)] = [f"not UTF-8 text (byte {exc.start + 1}: {exc.reason})"]
                    continue
                except json.JSONDecodeError as exc:
                    bad_lines[(name, line_no)] = [f"invalid JSON ({exc.msg} at column {exc.colno})"]
                    continue
                except (ValueError, RecursionError) as exc:  # an integer of 4,300+ digits, nesting too deep
                    bad_lines[(name, line_no)] = [f"invalid JSON ({type(exc).__name__}: {str(exc)[:80]})"]
                    continue
                record, problems = _parse(obj, file.parent, name, line_no)
                rid = obj.get("id") if isinstance(obj, dict) else None
                if isinstance(rid, str) and rid:
                    if rid in seen_ids:
                        problems.append(f"duplicate id {rid!r} (first on line {seen_ids[rid]})")
                    else:
                        seen_ids[rid] = line_no
                if record is None:
                    bad_lines[(name, line_no)] = problems
                else:
                    pending.append((record, problems))

    records: list[Record] = []
    infos = _check_images({r.image for r, _ in pending}) if check_images else {}
    for record, problems in pending:
        if check_images:
            problems = problems + _image_problems(record, infos[record.image])
        if problems:
            bad_lines[(record.file, record.line)] = problems
        else:
            records.append(record)

    problems_out = [f"{f}:{n}: {reason}" for (f, n), reasons in sorted(bad_lines.items()) for reason in reasons]
    bad_per_file = Counter(f for f, _ in bad_lines)
    per_file = {name: (total - bad_per_file[name], bad_per_file[name]) for name, total in counts.items()}
    return records, problems_out, per_file


def read_records(path: str | os.PathLike, skip_bad: bool = False, check_images: bool = True) -> Records:
    """Read and validate a ``.jsonl`` file or every ``*.jsonl`` of a folder.

    Raises ``DataFormatError`` listing every problem (one ``file:line: reason`` per line, then
    a count) unless ``skip_bad``, in which case bad records are left out, logged, and counted
    in the result's ``skipped`` attribute. ``check_images=False`` skips decoding the
    screenshots (and the ROI bounds check that needs their size): for text-only uses.
    """
    records, problems, per_file = _scan(path, check_images)
    num_bad = sum(bad for _, bad in per_file.values())
    if num_bad and not skip_bad:
        total = num_bad + len(records)
        raise DataFormatError("\n".join(problems + [f"{num_bad} bad record(s) of {total} in {path}"]))
    if num_bad:
        log.warning("skipped %d bad record(s) of %d in %s", num_bad, num_bad + len(records), path)
    return Records(records, skipped=num_bad, problems=problems)


def _distributions(records: list[Record]) -> dict[str, Counter]:
    return {
        "task": Counter(r.task for r in records),
        "layout": Counter(r.layout for r in records),
        "prev_layout": Counter(r.prev_layout for r in records),
        "lang": Counter(r.lang for r in records),
        "users": Counter("unknown" if r.user_id is None else "known" for r in records),
        "sessions": Counter("none" if r.session is None else "in a session" for r in records),
        "renderer": Counter(r.renderer or "unknown" for r in records),
        "scenario": Counter(r.scenario or "unknown" for r in records),
    }


def screen_text_coverage(records: list[Record]) -> tuple[int, float]:
    """(records carrying ``screen_text``, mean lines per screen among them)."""
    read = [len(r.screen_text) for r in records if r.screen_text is not None]
    return len(read), (sum(read) / len(read) if read else 0.0)


def check_dataset(path: str | os.PathLike, out: TextIO = sys.stdout) -> CheckReport:
    """Validate a data set and print every problem, the per-file counts and label distributions.

    The report's ``ok`` is False when the path holds no records or any record is bad;
    ``keypilot data check`` exits non-zero then.
    """
    try:
        records, problems, per_file = _scan(path, check_images=True)
    except FileNotFoundError as exc:
        print(str(exc), file=out)
        return CheckReport(ok=False, problems=[str(exc)], files={}, distributions={})
    for problem in problems:
        print(problem, file=out)
    if not per_file:
        problems.append(f"{path}: no .jsonl files")
        print(problems[-1], file=out)
    for name, (good, bad) in per_file.items():
        print(f"{name}: {good} ok, {bad} bad", file=out)
    dist = _distributions(records)
    num_users = len({r.user_id for r in records if r.user_id is not None})
    num_sessions = len({r.session for r in records if r.session is not None})
    for key, counter in dist.items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
        extra = {"users": f" ({num_users} distinct)", "sessions": f" ({num_sessions} distinct)"}.get(key, "")
        print(f"{key}: {shown or '-'}{extra}", file=out)
    with_text, mean_lines = screen_text_coverage(records)
    share = f" ({100 * with_text / len(records):.0f}%)" if records else ""
    print(f"screen_text: {with_text} of {len(records)} record(s){share}, {mean_lines:.1f} lines per screen", file=out)
    num_bad = sum(bad for _, bad in per_file.values())
    ok = bool(records) and num_bad == 0 and bool(per_file)
    print(f"{'OK' if ok else 'FAILED'}: {len(records)} good record(s), {num_bad} bad", file=out)
    return CheckReport(ok=ok, problems=problems, files=per_file, distributions=dist)

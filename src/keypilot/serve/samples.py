"""Demo screens for the page: a varied pick of records from a generated data set folder.

Only what the page needs is read (id, image, context, layouts, task, target), and a record
that lacks it is passed over: this is a menu of examples, not a validator
(``keypilot data check`` is). Images are served only through the id -> path table built
here, so a request can never name a file by path.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from keypilot.labels import LAYOUTS, TASKS
from keypilot.serve.schema import is_sample_id

# Held-out splits first: a demo should show screens the model did not train on.
SPLIT_ORDER: tuple[str, ...] = ("test.jsonl", "val.jsonl", "train.jsonl")


@dataclass(frozen=True)
class Sample:
    id: str
    context: str
    prev_layout: str
    layout: str
    task: str
    target: str
    image_path: Path

    def to_json(self) -> dict:
        info = asdict(self)
        del info["image_path"]
        info["image_url"] = f"/v1/samples/{self.id}/image"
        return info


def load_samples(folder: Path, limit: int = 60) -> dict[str, Sample]:
    """Up to ``limit`` samples, taken in turn from each (layout, task) group so all show up."""
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    seen: set[str] = set()
    for jsonl in _jsonl_files(folder):
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            sample = _parse(line, jsonl.parent)
            if sample is not None and sample.id not in seen:
                seen.add(sample.id)
                groups[(sample.layout, sample.task)].append(sample)
    picked: dict[str, Sample] = {}
    queues = [groups[key] for key in sorted(groups)]
    depth = 0
    while len(picked) < limit and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(picked) < limit:
                picked[queue[depth].id] = queue[depth]
        depth += 1
    return picked


def _jsonl_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    named = [folder / name for name in SPLIT_ORDER if (folder / name).is_file()]
    others = sorted(p for p in folder.glob("*.jsonl") if p not in named)
    return named + others


def _parse(line: str, base: Path) -> Sample | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # bad JSON, an integer too long to convert, nesting too deep
        return None
    if not isinstance(record, dict):
        return None
    fields = {key: record.get(key) for key in ("id", "image", "context", "task", "target", "layout")}
    if not all(isinstance(value, str) for value in fields.values()):
        return None
    prev_layout = record.get("prev_layout", "EN")
    if fields["layout"] not in LAYOUTS or prev_layout not in LAYOUTS or fields["task"] not in TASKS:
        return None
    # Ids become URL path segments: letters, digits, ".", "_", "-" only.
    if not is_sample_id(fields["id"]):
        return None
    try:
        image_path = (base / fields["image"]).resolve()
        if not image_path.is_file():
            return None
    except (OSError, ValueError):  # a path the file system cannot hold (NUL byte, unpaired surrogate)
        return None
    return Sample(
        id=fields["id"],
        context=fields["context"],
        prev_layout=prev_layout,
        layout=fields["layout"],
        task=fields["task"],
        target=fields["target"],
        image_path=image_path,
    )

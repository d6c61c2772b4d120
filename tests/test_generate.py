"""The built-in data generator: determinism, format, ROI boxes and label balance."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from keypilot.data.generate import generate_dataset, iter_steps
from keypilot.data.generate.stories import token_spans
from keypilot.labels import ACTION_TO_TASK, LAYOUTS, ROI_KEYS, TASKS, lang_of

REQUIRED = {"id": str, "image": str, "context": str, "task": str, "target": str, "layout": str}
EMAIL = re.compile(r"^[\w.]+@[\w.]+$")
OPTIONAL = {"prev_layout": str, "lang": str, "user_id": int, "rois": dict, "action": str, "session": str, "step": int,
            "renderer": str, "scenario": str, "screen_text": list}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "a"
    counts = generate_dataset(out, 120, seed=7, workers=2, progress=False)
    assert sum(counts.values()) == 120
    return out


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for split in ("train", "val", "test") for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(dataset: Path, tmp_path: Path) -> None:
    """Records and Pillow screenshots are byte-identical; Chromium's almost always are (a glyph can
    land a pixel apart depending on what the page drew before: docs/data.md, Determinism)."""
    generate_dataset(tmp_path / "one", 120, seed=7, workers=1, progress=False)
    one, two = _tree_bytes(tmp_path / "one"), _tree_bytes(dataset)
    assert one.keys() == two.keys()
    renderer = {f"images/{Path(r['image']).name}": r["renderer"] for r in _records(dataset)}
    for name, data in one.items():
        if renderer.get(name) != "html":
            assert data == two[name], name
    html = [name for name, kind in renderer.items() if kind == "html"]
    assert sum(one[name] == two[name] for name in html) >= 0.9 * len(html)


def test_different_seed_differs(dataset: Path, tmp_path: Path) -> None:
    generate_dataset(tmp_path / "b", 20, seed=8, workers=1, progress=False)
    first = [r["target"] for r in _records(tmp_path / "b")]
    assert first != [r["target"] for r in _records(dataset)][:20]


def test_records_follow_the_format(dataset: Path) -> None:
    records = _records(dataset)
    assert len(records) == 120 and len({r["id"] for r in records}) == 120
    for r in records:
        for key, typ in REQUIRED.items():
            assert isinstance(r[key], typ), (r["id"], key)
        for key, typ in OPTIONAL.items():
            assert key in r and isinstance(r[key], typ), (r["id"], key)
        assert r["task"] in TASKS and r["layout"] in LAYOUTS and r["prev_layout"] in LAYOUTS
        assert r["lang"] == lang_of(r["target"]) == r["layout"]
        assert ACTION_TO_TASK[r["action"]] == r["task"]
        assert r["target"], r["id"]
        assert (r["context"] == "") == (r["task"] == "suggestion"), r
        assert r["user_id"] >= 0 and r["step"] >= 0
        with Image.open(dataset / r["image"]) as img:
            assert img.format in ("PNG", "JPEG")
            w, h = img.size
        assert h > w, "screenshots are portrait"
        assert set(r["rois"]) == set(ROI_KEYS)
        for key, box in r["rois"].items():
            if box is None:
                continue
            x0, y0, x1, y1 = box
            assert all(isinstance(v, int) for v in box), (r["id"], key)
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (r["id"], key, box, (w, h))
        assert r["rois"]["input_field"] is not None  # a partial screenshot may cut the title bar away
        assert r["renderer"] in ("pil", "html") and r["scenario"] == r["id"].rsplit("-", 2)[0]


def test_prev_layout_follows_the_previous_step(dataset: Path) -> None:
    by_session: dict[str, list[dict]] = {}
    for r in _records(dataset):
        by_session.setdefault(r["session"], []).append(r)
    for steps in by_session.values():
        steps.sort(key=lambda r: r["step"])
        assert [r["step"] for r in steps] == list(range(len(steps)))
        for a, b in zip(steps, steps[1:]):
            assert b["prev_layout"] == a["layout"]


def test_sessions_do_not_cross_splits(dataset: Path) -> None:
    where: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        for line in (dataset / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            where.setdefault(json.loads(line)["session"], set()).add(split)
    assert all(len(s) == 1 for s in where.values())


def test_label_balance_and_splits_on_the_sampler() -> None:
    steps = list(iter_steps(600, seed=0))
    assert len(steps) == 600
    n = len(steps)
    layouts = Counter(s.moment.layout for s in steps)
    tasks = Counter(s.moment.task for s in steps)
    for name in LAYOUTS:
        assert layouts[name] / n >= 0.10, layouts
    for name in TASKS:
        assert tasks[name] / n >= 0.10, tasks
    splits = Counter(s.split for s in steps)
    assert 0.7 < splits["train"] / n < 0.9 and splits["val"] and splits["test"]
    assert len({s.user.uid for s in steps}) > 50
    # Suggestions are short phrases; an autofilled e-mail address counts as one unit.
    suggestions = [s.moment.target for s in steps if s.moment.task == "suggestion" and not EMAIL.match(s.moment.target)]
    assert suggestions and all(len(token_spans(t)) <= 5 for t in suggestions)


def test_screen_decides_some_labels() -> None:
    """An empty code field's suggestion is the code in the notification banner."""
    steps = [s for s in iter_steps(400, seed=1) if s.scenario == "otp" and s.moment.task == "suggestion"]
    assert steps
    for s in steps:
        assert s.screen.banner is not None and s.moment.target in s.screen.banner.body
        assert s.moment.layout == "NUM"


def test_bad_num_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        generate_dataset(tmp_path, 0)

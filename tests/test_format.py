"""The record validator: every bad line is named with its reason; a good set passes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from keypilot.data.format import DataFormatError, check_dataset, read_records
from keypilot.labels import ROI_KEYS


def good(rid: str, **fields) -> dict:
    record = {
        "id": rid,
        "image": "images/screen.png",
        "context": "See you tomo",
        "task": "auto_completion",
        "target": "tomorrow",
        "layout": "EN",
    }
    record.update(fields)
    return record


def write_jsonl(path: Path, lines: list) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False))
            fh.write("\n")


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (72, 128), (30, 60, 90)).save(folder / "screen.png")
    Image.new("RGB", (72, 128), (90, 60, 30)).save(folder / "photo.jpg", quality=90)
    Image.new("RGB", (128, 72)).save(folder / "landscape.png")
    Image.new("RGB", (72, 128)).save(folder / "screen.gif")
    data = (folder / "screen.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    data = (folder / "photo.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[:-20])
    return tmp_path


def test_good_dataset_passes(images: Path) -> None:
    write_jsonl(
        images / "train.jsonl",
        [
            good("a", user_id=3, rois={"input_field": [0, 100, 72, 128], "keyboard": None}, action="type"),
            "",  # blank lines are skipped
            good("b", image="images/photo.jpg", context="", task="suggestion", target="482913", layout="NUM",
                 prev_layout="EN", session="s1", step=0),
            good("c", context="明天见，路上小新", task="error_correction", target="小心", layout="ZH", lang="ZH",
                 screen_text=[{"text": "路上小心", "box": [4, 10, 60.5, 22]}, {"text": "  ", "box": [0, 0, 1, 1]},
                              {"text": "验证码 482913", "box": [4, 30, 72, 42]}]),
        ],
    )
    write_jsonl(images / "val.jsonl", [good("a")])  # ids need only be unique within a file
    out = io.StringIO()
    report = check_dataset(images, out=out)
    assert report.ok, out.getvalue()
    assert report.num_ok == 4 and report.num_bad == 0
    records = read_records(images)
    assert [r.id for r in records] == ["a", "b", "c", "a"]  # files sorted: train, val
    a, b, c = records[:3]
    assert a.image.is_absolute() and a.image.name == "screen.png"
    assert a.rois == {"input_field": [0, 100, 72, 128], "chat_bubble": None, "keyboard": None, "title_bar": None}
    assert list(a.rois) == list(ROI_KEYS)
    assert (a.user_id, b.user_id) == (3, None)
    assert (b.lang, b.prev_layout, b.step) == ("NUM", "EN", 0)  # lang derived from the target
    assert (c.lang, c.prev_layout) == ("ZH", "EN")
    assert (b.file, b.line) == (str(images / "train.jsonl"), 3)
    assert "task: auto_completion 2" in out.getvalue()
    # screen_text: None when absent, blank lines dropped, boxes as floats
    assert a.screen_text is None
    assert [(t.text, t.box) for t in c.screen_text] == [("路上小心", (4.0, 10.0, 60.5, 22.0)), ("验证码 482913", (4.0, 30.0, 72.0, 42.0))]
    assert "screen_text: 1 of 4 record(s) (25%), 2.0 lines per screen" in out.getvalue()


BROKEN = [
    (good("ok"), None),
    ("{not json", "invalid JSON"),
    (good("x1", layout="QWERTY"), "layout 'QWERTY' is not one of EN, ZH, SYM, EMOJI, NUM"),
    (good("x2", image="images/missing.png"), "image not found"),
    (good("x3", image="images/truncated.png"), "image unreadable"),
    (good("x4", rois={"input_field": [0, 100, 80, 128]}), "roi input_field [0, 100, 80, 128] lies outside the 72x128 image"),
    ({k: v for k, v in good("x5").items() if k != "target"}, "missing required field(s): target"),
    (good("x6", context=42), "context must be a string, got int"),
    (good("ok"), "duplicate id 'ok' (first on line 1)"),
    (good("x7", user_id=True), "user_id must be an integer >= 0, got true"),
    (good("x8", user_id=-1), "user_id must be an integer >= 0, got -1"),
    (good("x9", task="suggestion", action="backspace"), "action 'backspace' implies task 'error_correction'"),
    (good("x10", image="images/landscape.png"), "landscape"),
    (good("x11", image="images/screen.gif"), "not PNG or JPEG"),
    (good("x12", rois={"input_field": [10, 10, 5, 20]}), "empty or inverted"),
    (good("x13", rois={"input_field": [1, 2, 3]}), "must be null or 4 numbers"),
    (good("x14", rois={"sidebar": None}), "unknown roi 'sidebar'"),
    (good("x15", rois=[1, 2, 3, 4]), "rois must be an object"),
    (good("x16", colour="red"), "unknown field(s): colour"),
    (good("x17", step=-2, session=7), "session must be a string"),
    (good("x18", id=""), "id is empty"),
    ("[1, 2]", "record must be a JSON object, got list"),
    (good("x19", prev_layout="KLINGON"), "prev_layout 'KLINGON' is not one of"),
    (good("x20", image="images/truncated.jpg"), "image unreadable"),
    (good("x21", screen_text="Your code is 482913"), "screen_text must be a list of {text, box} objects, got str"),
    (good("x22", screen_text=[{"text": 5, "box": [0, 0, 1, 1]}]), "screen_text[0].text must be a string"),
    (good("x23", screen_text=[{"text": "hi", "box": [0, 0, 10]}]), "screen_text[0].box must be [x0, y0, x1, y1] numbers"),
    (good("x24", screen_text=[{"text": "a", "box": [0, 0, 1, 1]}, {"text": "b", "box": [5, 5, 1, 1]}]),
     "screen_text[1].box must have x0 <= x1 and y0 <= y1"),
    (good("x25", screen_text=[{"text": "a", "box": [0, 0, 1, 1], "font": "x"}]), "screen_text[0] must be an object with keys text and box"),
    (good("x26", screen_text=[{"text": "OTP 482913", "box": [0, 0, 80, 10]}]),
     "screen_text box [0.0, 0.0, 80.0, 10.0] ('OTP 482913') lies outside the 72x128 image"),
]


def test_broken_dataset_names_every_line(images: Path) -> None:
    write_jsonl(images / "train.jsonl", [line for line, _ in BROKEN])
    out = io.StringIO()
    report = check_dataset(images, out=out)
    text = out.getvalue()
    assert not report.ok
    name = str(images / "train.jsonl")
    for line_no, (_, reason) in enumerate(BROKEN, start=1):
        if reason is None:
            assert not any(p.startswith(f"{name}:{line_no}:") for p in report.problems)
        else:
            assert any(p.startswith(f"{name}:{line_no}: ") and reason in p for p in report.problems), (line_no, reason, text)
    assert report.files[name] == (1, len(BROKEN) - 1)
    assert f"{name}: 1 ok, {len(BROKEN) - 1} bad" in text

    with pytest.raises(DataFormatError) as err:
        read_records(images / "train.jsonl")
    message = str(err.value)
    assert f"{name}:4: image not found" in message
    assert message.splitlines()[-1].startswith(f"{len(BROKEN) - 1} bad record(s) of {len(BROKEN)}")

    kept = read_records(images / "train.jsonl", skip_bad=True)
    assert [r.id for r in kept] == ["ok"] and kept.skipped == len(BROKEN) - 1

    # Without image checks the image-only problems go away, the others stay.
    text_only = read_records(images / "train.jsonl", skip_bad=True, check_images=False)
    assert {r.id for r in text_only} == {"ok", "x2", "x3", "x4", "x10", "x11", "x20", "x26"}


def test_cli_exits_nonzero_on_bad_data(images: Path) -> None:
    write_jsonl(images / "bad.jsonl", [good("a"), good("b", layout="nope")])
    result = subprocess.run(
        [sys.executable, "-m", "keypilot", "data", "check", str(images)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert f"{images / 'bad.jsonl'}:2: layout 'nope'" in result.stdout


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    assert not check_dataset(tmp_path / "nowhere", out=io.StringIO()).ok
    assert not check_dataset(tmp_path, out=io.StringIO()).ok

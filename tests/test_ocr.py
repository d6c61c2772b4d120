"""Screen text recognition (``keypilot.ocr``): the real RapidOCR models on drawn and generated
screens, the word-space restoration, ``keypilot data ocr`` and bad input. One reader for the
module (loading the models takes about a second)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

pytest.importorskip("rapidocr")

from keypilot.cli import main  # noqa: E402
from keypilot.ocr import ScreenReader, WordSplitter, keyboard_top  # noqa: E402
from keypilot.screen_text import parse_screen_text  # noqa: E402

LINES = {"Your code is 482913": (40, 300), "Meet me at Room 214": (40, 420), "anna.lee@example.com": (40, 540)}


@pytest.fixture(scope="module")
def reader() -> ScreenReader:
    return ScreenReader(threads=1)


@pytest.fixture(scope="module")
def words() -> WordSplitter:
    return WordSplitter.from_wordfreq()


def drawn_screen(size: tuple[int, int] = (720, 1440), lines: dict[str, tuple[int, int]] = LINES) -> Image.Image:
    image = Image.new("RGB", size, (250, 250, 252))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=34)
    for text, xy in lines.items():
        draw.text(xy, text, fill=(20, 20, 30), font=font)
    return image


def texts(lines) -> list[str]:
    return [line.text for line in lines]


def test_reads_drawn_lines_with_boxes_in_image_pixels(reader: ScreenReader) -> None:
    image = drawn_screen()
    lines = reader.read(image)
    assert texts(lines) == list(LINES)  # reading order, codes and the address verbatim
    for line in lines:
        x, y = LINES[line.text]
        x0, y0, x1, y1 = line.box
        assert abs(x0 - x) < 20 and y0 - 10 < y + 17 < y1 + 10 and x1 > x0 + 200
    # The same screen at twice the size: the same text, boxes twice as far.
    doubled = reader.read(image.resize((1440, 2880), Image.Resampling.LANCZOS))
    assert texts(doubled) == list(LINES)
    assert doubled[0].box[1] == pytest.approx(2 * lines[0].box[1], abs=16)


def test_keyboard_box_cuts_the_screen_and_field_orders_the_budget(reader: ScreenReader) -> None:
    image = drawn_screen()
    below = reader.read(image, keyboard=(0, 500, 720, 1440))  # the address line lies below the keyboard's top
    assert texts(below) == ["Your code is 482913", "Meet me at Room 214"]
    # A budget for one line: the line nearest the focused field wins.
    tight = ScreenReader(threads=1, budget_px=500, words=reader.words)
    assert texts(tight.read(image, field=(30, 400, 700, 470))) == ["Meet me at Room 214"]


def test_generated_screen_keyboard_is_not_read(reader: ScreenReader, tmp_path: Path) -> None:
    from keypilot.data.format import read_records
    from keypilot.data.generate import generate_dataset

    generate_dataset(tmp_path / "d", num=6, seed=3, workers=1, progress=False, renderer="pil")
    record = next(r for r in read_records(tmp_path / "d") if r.rois["keyboard"] is not None)
    image = Image.open(record.image).convert("RGB")
    top = record.rois["keyboard"][1]
    lines = reader.read(image)  # no ROIs: the keyboard is found from the boxes
    assert lines and all(line.box[3] <= top + 0.05 * image.height for line in lines)
    assert abs(keyboard_top(reader._detect(_bgr(image)), image.height) - top) < 0.06 * image.height


def _bgr(image: Image.Image):
    import numpy as np

    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def test_word_spaces_are_restored_and_copyable_tokens_kept(words: WordSplitter) -> None:
    assert words.split("Ithinkyouleft it at mine") == "I think you left it at mine"
    assert words.split("meetingyesterday.Please find thereport") == "meeting yesterday. Please find the report"
    for verbatim in ("anna.lee@example.com", "https://shop.example.com/orderstatus", "Code: 482913",
                     "Order #A12B34", "¥1,299.00", "+1 (833) 201-9253", "我们明天jian", "together"):
        assert words.split(verbatim) == verbatim


def test_word_splitter_from_a_lexicon_function() -> None:
    lexicon = {"good": -5.0, "morning": -6.0, "goodmorning": -20.0, "quill": -13.0, "marsh": -12.0}
    assert WordSplitter(lexicon.get).split("Goodmorning!") == "Good morning!"
    assert WordSplitter(lexicon.get).split("Quillmarsh") == "Quillmarsh"  # rare pieces: a name, kept


def test_bad_input(reader: ScreenReader) -> None:
    assert reader.read(Image.new("RGB", (720, 1440), (255, 255, 255))) == []  # no text
    assert reader.read(Image.new("RGB", (1, 1))) == []
    # Huge (8000 x 8000): downscaled before detection; boxes still in the original's pixels.
    huge = Image.new("RGB", (8000, 8000), (250, 250, 252))
    ImageDraw.Draw(huge).text((400, 3000), "Total 1299", fill=(0, 0, 0), font=ImageFont.load_default(size=300))
    lines = reader.read(huge)
    assert texts(lines) == ["Total 1299"] and lines[0].box[0] > 300 and lines[0].box[1] > 2900
    # Rotated a quarter turn: an answer (a list of lines), whatever it reads.
    rotated = reader.read(drawn_screen().rotate(90, expand=True))
    assert isinstance(rotated, list)
    # Other modes are converted; a non-image is a clear TypeError.
    assert texts(reader.read(drawn_screen().convert("L"))) == list(LINES)
    with pytest.raises(TypeError, match="PIL image"):
        reader.read(b"not an image")  # type: ignore[arg-type]


def test_recognised_text_is_not_logged(reader: ScreenReader, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        assert reader.read(drawn_screen())
    assert "482913" not in caplog.text


def _small_data(tmp_path: Path) -> Path:
    from keypilot.data.generate import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, num=8, seed=5, workers=1, progress=False, renderer="pil")
    return data


def test_data_ocr_fills_missing_screen_text(reader: ScreenReader, tmp_path: Path, capsys, monkeypatch) -> None:
    import keypilot.ocr.reader

    monkeypatch.setattr(keypilot.ocr.reader, "ScreenReader", lambda *a, **k: reader)  # the module's loaded reader
    data = _small_data(tmp_path)
    for path in data.glob("*.jsonl"):  # a data set without the field
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "screen_text"}) + "\n" for r in rows))
    test_file = data / "test.jsonl"
    before = [json.loads(line) for line in test_file.read_text().splitlines()]
    assert main(["data", "ocr", str(test_file)]) == 0
    out = capsys.readouterr().out
    after = [json.loads(line) for line in test_file.read_text().splitlines()]
    assert f"filled on {len(before)} of {len(before)}" in out
    screens = len({r["image"] for r in before})
    assert f"({screens} screenshots read" in out  # one read per screenshot
    for old, new in zip(before, after):
        assert {k: v for k, v in new.items() if k != "screen_text"} == old
        lines, problems = parse_screen_text(new["screen_text"])
        assert problems == [] and len(lines) == len(new["screen_text"])
    assert any(r["screen_text"] for r in after)
    assert main(["data", "check", str(test_file)]) == 0
    # Again: nothing to do; --force reads every screenshot again.
    stamp = test_file.read_text()
    assert main(["data", "ocr", str(test_file)]) == 0 and test_file.read_text() == stamp
    assert main(["data", "ocr", str(test_file), "--force"]) == 0
    assert "filled on" in capsys.readouterr().out


def test_data_ocr_bad_data_is_reported_and_nothing_written(tmp_path: Path, capsys) -> None:
    data = tmp_path / "d"
    data.mkdir()
    good = {"id": "a", "image": "a.png", "context": "", "task": "suggestion", "target": "hi", "layout": "EN"}
    drawn_screen().save(data / "a.png")
    (data / "b.png").write_bytes(b"this is not an image")
    lines = [json.dumps(good), json.dumps({**good, "id": "b", "image": "b.png"}), '{"id": "c"']
    (data / "x.jsonl").write_text("\n".join(lines) + "\n")
    before = (data / "x.jsonl").read_text()
    assert main(["data", "ocr", str(data)]) == 1
    err = capsys.readouterr().err
    assert "x.jsonl:2:" in err and "unreadable" in err and "x.jsonl:3:" in err
    assert (data / "x.jsonl").read_text() == before
    shutil.rmtree(data)
    assert main(["data", "ocr", str(data)]) != 0
    assert str(data) in capsys.readouterr().err


def test_recognition_bench_figures(tmp_path: Path) -> None:
    from keypilot.ocr.bench import format_recognition, measure_recognition

    paths = []
    for i, size in enumerate(((360, 780), (412, 915))):
        paths.append(tmp_path / f"s{i}.png")
        drawn_screen(size, {"Your code is 482913": (20, 200)}).save(paths[-1])
    figures = measure_recognition(paths, threads=1)
    assert figures["screens"] == 2 and set(figures["sizes"]) == {"stored", "1080w"}
    for row in figures["sizes"].values():
        assert 0 < row["p50_ms"] <= row["p95_ms"] and row["lines"] == 1.0
    assert figures["sizes"]["1080w"]["size"] == "1080x2340"
    assert "p50 ms" in format_recognition(figures) and "1080" in format_recognition(figures)


def test_evaluation_reads_records_without_screen_text_once_per_image(reader: ScreenReader, tmp_path: Path) -> None:
    from keypilot.data.format import Record
    from keypilot.evaluation.evaluate import read_missing_screen_text
    from keypilot.screen_text import ScreenText

    drawn_screen().save(tmp_path / "s.png")
    kept = [ScreenText("given", (0, 0, 10, 10))]
    records = [Record(id=str(i), image=tmp_path / "s.png", context="", task="suggestion", target="482913",
                      layout="NUM") for i in range(3)]
    records[2].screen_text = kept  # a record that has the field is left as it is
    assert read_missing_screen_text(records, reader) == 2
    assert texts(records[0].screen_text) == list(LINES) and records[1].screen_text is records[0].screen_text
    assert records[2].screen_text is kept
    assert read_missing_screen_text(records, reader) == 0

"""Properties that must hold for any input (Hypothesis), each bounded to a few seconds.

- The record validator never crashes on arbitrary lines: every line is a record or is named
  (``file:line: reason``), whatever JSON (or non-JSON, or non-UTF-8 bytes) it holds.
- The tokenizer's decode(encode(text)) is text, for arbitrary Unicode.
- The screenshot loader never crashes on arbitrary bytes: an RGB image or ``ImageRejected``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from keypilot.data.format import REQUIRED_FIELDS, check_dataset, read_records
from keypilot.images import ImageLimits, ImageRejected, decode_screenshot, read_screenshot

# No example database on disk (a test run leaves nothing behind); no deadline on a busy 2-core box.
BOUNDED = settings(database=None, deadline=None, max_examples=150,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Records that get past the first checks: the right keys, arbitrary values (mostly plausible).
record_like = st.fixed_dictionaries(
    {key: st.one_of(st.text(max_size=12), json_values) for key in REQUIRED_FIELDS},
    optional={"prev_layout": json_values | st.sampled_from(["EN", "ZH", "NUM"]), "user_id": json_values,
              "rois": json_values | st.dictionaries(st.sampled_from(["input_field", "keyboard", "x"]),
                                                    st.lists(st.integers(-5, 500) | st.floats(), max_size=5) | st.none()),
              "action": json_values, "session": json_values, "step": json_values, "lang": json_values},
)
plausible = st.fixed_dictionaries({
    "id": st.text(max_size=8), "image": st.sampled_from(["images/ok.png", "images/none.png", "", "../x", "a\x00b"]),
    "context": st.text(max_size=12), "task": st.sampled_from(["auto_completion", "suggestion", "x"]),
    "target": st.text(max_size=6), "layout": st.sampled_from(["EN", "ZH", "SYM", "EMOJI", "NUM", "en"]),
})
lines = st.one_of(
    json_values.map(json.dumps),
    record_like.map(lambda r: json.dumps(r, ensure_ascii=False, allow_nan=True)),
    plausible.map(json.dumps),
    st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
)


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("records")
    (folder / "images").mkdir()
    Image.new("RGB", (60, 120), (200, 200, 200)).save(folder / "images" / "ok.png")
    return folder


@BOUNDED
@given(st.lists(lines, min_size=1, max_size=8))
@example([b'{"user_id": ' + b"9" * 5000 + b"}"])  # an integer too long for Python to convert
@example([b"[" * 5000 + b"]" * 5000])  # nesting deeper than the JSON parser's recursion
@example([b"\xff\xfe not utf-8", json.dumps({"id": "a", "image": "images/ok.png", "context": "", "task": "suggestion",
                                             "target": "hi", "layout": "EN"}).encode()])
def test_record_validator_names_every_bad_line(data_folder: Path, raw_lines: list) -> None:
    path = data_folder / "train.jsonl"
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
                                for line in raw_lines) + b"\n")
    records = read_records(path, skip_bad=True)
    named = {int(m.group(1)) for problem in records.problems if (m := re.match(rf"{re.escape(str(path))}:(\d+): ", problem))}
    assert len(named) == records.skipped and len(records.problems) >= records.skipped
    good = {record.line for record in records}
    counted = [n for n, line in enumerate(raw_lines, start=1)
               if (line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")).strip()]
    assert sorted(good | named) == counted and not good & named  # every line: a record or named, never both
    report = check_dataset(path, out=io.StringIO())
    assert report.num_ok == len(good) and report.num_bad == len(named)


@pytest.fixture(scope="module")
def tokenizer():
    from keypilot.tokenizer import build_tokenizer

    return build_tokenizer(["see you tomorrow", "我们明天见", "ok 👍 123456"], vocab_size=32000)


@BOUNDED
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
@example("<cls> hi <eos><pad> <task:suggestion>")  # special tokens typed by a user are just text
@example("e\u0301 ﬁ Ａ \u200d👩\u200d👩\u200d👧 \x00\t")  # combining marks, ligatures, full-width, ZWJ, NUL
def test_tokenizer_round_trips_any_text(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    if not text.startswith(" "):  # encode_target's own leading space is the one it strips again
        assert tokenizer.decode_target(tokenizer.encode_target(text)) == text


def _encoded(fmt: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (9, 90, 200)).save(out, format=fmt)
    return out.getvalue()


VALID = [_encoded("PNG", (40, 80)), _encoded("JPEG", (40, 80)), _encoded("WEBP", (40, 80)), _encoded("GIF", (8, 8))]
damaged = st.tuples(st.sampled_from(VALID), st.integers(0, 400), st.binary(min_size=1, max_size=16)).map(
    lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + len(t[2]):])


@BOUNDED
@given(st.one_of(st.binary(max_size=300), damaged, st.sampled_from(VALID).map(lambda b: b[: len(b) // 2])))
def test_image_loader_never_crashes(data: bytes) -> None:
    try:
        image = decode_screenshot(data, ImageLimits())
    except ImageRejected as exc:
        assert str(exc) and exc.status in (400, 413)
    else:
        assert image.mode == "RGB" and min(image.size) >= 1


def test_image_loader_reads_files_like_uploads_and_turns_photos_upright(tmp_path: Path) -> None:
    """EXIF orientation 6 (the phone was turned): both the file loader (CLI, predictors) and the
    bytes loader (server) give the same upright pixels."""
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 10, 20))  # a red band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "photo.jpg"
    image.save(path, format="JPEG", exif=exif, quality=95)
    from_file, from_bytes = read_screenshot(path), decode_screenshot(path.read_bytes())
    assert from_file.size == from_bytes.size == (20, 40)
    assert from_file.tobytes() == from_bytes.tobytes()
    red, green, blue = from_file.getpixel((10, 2))  # the band is now on top
    assert red > 200 and green < 60 and blue < 60
    with pytest.raises(ImageRejected, match=r"nope\.png: no such file"):
        read_screenshot(tmp_path / "nope.png")
    with pytest.raises(ImageRejected, match=r"is a folder|not a file"):
        read_screenshot(tmp_path)

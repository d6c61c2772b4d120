"""The privacy rule: a password field is neither read nor predicted nor remembered, and no
screenshot, typed text or recognised screen text of any request reaches the disk or a log
(``predict`` and ``serve``).

Writes are watched with a Python audit hook (every file this process opens for writing, by any
thread, including temporary files that have no name); logs with a handler on the root logger at
DEBUG while the server logs at debug level with its access log on.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_run
from PIL import Image

pytest.importorskip("fastapi")
import httpx  # noqa: E402

from keypilot.cli import main  # noqa: E402
from keypilot.serve.app import create_app  # noqa: E402
from keypilot.serve.live import serving_app  # noqa: E402

MARKER = "zqxv-private-7731"  # typed text that must never show up in a log
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class WriteWatch:
    """Records every file opened for writing while ``active`` (a process-wide audit hook)."""

    def __init__(self) -> None:
        self.active = False
        self.writes: list[str] = []
        sys.addaudithook(self._hook)  # hooks cannot be removed: this one only records while active

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or event != "open":
            return
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing:
            self.writes.append(f"{path} (mode {mode!r}, flags {flags!r})")

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        self.writes = []
        self.active = True
        try:
            yield self.writes
        finally:
            self.active = False


WATCH = WriteWatch()


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def every_log_line() -> Iterator[list[str]]:
    """Every record of the root logger and of uvicorn's own (which do not propagate), at DEBUG."""
    handler = LogRecords()
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_run(tmp_path_factory.getbasetemp() / "serve-tiny")


@pytest.fixture(scope="module")
def predictor(tiny_run: tuple[Path, Path], one_torch_thread: None):
    from keypilot.inference.predictor import Predictor

    return Predictor.from_pretrained(tiny_run[0])


class Counting:
    """The real predictor, counting the calls that reach it."""

    def __init__(self, predictor) -> None:
        self.predictor, self.calls = predictor, 0

    def predict(self, *args, **kwargs):
        self.calls += 1
        return self.predictor.predict(*args, **kwargs)


def noisy_png(width: int = 900, height: int = 1200, seed: int = 0) -> bytes:
    """A screenshot that compresses badly: over the 1 MB a form parser would spool to disk."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def test_password_field_is_not_read_predicted_or_kept(predictor) -> None:
    from fastapi.testclient import TestClient

    counting = Counting(predictor)
    with TestClient(create_app(counting)) as client:
        answers = [
            client.post("/v1/predict", json={"text": MARKER, "input_type": "password", "prev_layout": "NUM"}),
            # An "image" that is no image at all: it is accepted because it is never decoded.
            client.post("/v1/predict", data={"text": MARKER, "input_type": "password", "prev_layout": "NUM"},
                        files={"image": ("screen.png", b"not even an image", "image/png")}),
            client.post("/v1/predict", json={"text": MARKER, "input_type": "password", "prev_layout": "NUM",
                                             "screen_id": "0" * 32, "user_id": 12}),
        ]
        for response in answers:
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["withheld"] is True and answer["screen_id"] is None and answer["task"] is None
            assert answer["shown"] == [] and answer["corrections"] == [] and answer["completions"] == []
            assert answer["suggestion"] is None and answer["layout"] == "NUM"
        assert counting.calls == 0
        assert client.get("/healthz").json()["screens"] == 0  # no upload was stored
        other = client.post("/v1/predict", json={"text": "hi", "input_type": "email", "screen_id": "0" * 32})
        assert other.status_code == 404  # other input types are answered as usual (here: unknown screen)
        assert client.post("/v1/predict", json={"text": "hi", "input_type": "secret", "screen_id": "0" * 32}).status_code == 422


def test_predictor_skips_the_screen_for_a_password(predictor) -> None:
    image = Image.new("RGB", (90, 180), (10, 200, 30))
    predictor.clear_cache()
    result = predictor.predict(image, MARKER, prev_layout="ZH", input_type="password")
    assert result.shown == [] and result.layout == "ZH" and result.task is None
    assert predictor.screen(image)[1] is False  # the screenshot was not encoded (nor cached)
    with pytest.raises(ValueError, match="unknown input_type 'pin'"):
        predictor.predict(image, "x", input_type="pin")


def test_cli_predict_for_a_password_reads_no_image(tiny_run: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    run, _ = tiny_run
    code = main(["predict", "--run", str(run), "--image", str(tmp_path / "never-read.png"), "--text", MARKER,
                 "--input-type", "password", "--prev-layout", "EMOJI"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "nothing was read, predicted or kept" in out and "EMOJI" in out and MARKER not in out


def test_serve_and_predict_write_no_screenshot_or_text_anywhere(tiny_run: tuple[Path, Path], predictor, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    run, data = tiny_run
    big, small = noisy_png(), noisy_png(120, 240, seed=1)
    assert len(big) > 2 * 1024 * 1024
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where a spooled upload would land
    monkeypatch.setenv("TMPDIR", str(temp))
    app = create_app(predictor, samples_dir=data)
    with serving_app(app, log_level="debug", access_log=True) as url, every_log_line() as lines:
        with WATCH.watching() as writes, httpx.Client(base_url=url, timeout=120) as http:
            first = http.post("/v1/predict", data={"text": MARKER, "user_id": "5"},
                              files={"image": ("screen.png", big, "image/png")})
            assert first.status_code == 200, first.text
            screen_id = first.json()["screen_id"]
            again = http.post("/v1/predict", data={"text": MARKER + "x", "screen_id": screen_id})
            encoded = base64.b64encode(small).decode()
            as_json = http.post("/v1/predict", json={"text": MARKER, "image": encoded, "prev_layout": "ZH"})
            private = http.post("/v1/predict", json={"text": MARKER, "input_type": "password"})
            refused = http.post("/v1/predict", json={"text": MARKER * 200, "image": encoded})  # over 2,000 characters
            assert [r.status_code for r in (again, as_json, private, refused)] == [200, 200, 200, 422]
        assert writes == []
        image = tmp_path / "screen.png"
        image.write_bytes(small)
        with WATCH.watching() as cli_writes:
            assert main(["predict", "--run", str(run), "--image", str(image), "--text", MARKER, "--json"]) == 0
        assert cli_writes == []
    assert list(temp.iterdir()) == []
    captured = capfd.readouterr()
    assert any("POST /v1/predict" in line for line in lines)  # the access log was on and captured
    everything = "\n".join([*lines, captured.err, captured.out])
    assert MARKER not in everything
    assert encoded[1000:1100] not in everything and "zqxv" not in everything


def test_screen_text_is_never_logged_or_written(predictor, capfd) -> None:
    """The server reading screen text in the background: the recognised words reach the
    predictor, and no log line, stream or file."""
    pytest.importorskip("rapidocr")
    from PIL import ImageDraw, ImageFont

    from keypilot.ocr import ScreenReader

    secret = ("Quillmarsh", "739146")
    image = Image.new("RGB", (720, 1440), (250, 250, 252))
    ImageDraw.Draw(image).text((40, 300), f"{secret[0]} code {secret[1]}", fill=(0, 0, 0), font=ImageFont.load_default(size=36))
    upload = io.BytesIO()
    image.save(upload, format="PNG")
    given: list = []

    class Recording:
        def predict(self, image, text, prev_layout="EN", user_id=None, screen_key=None, screen_text=None):
            given.append(screen_text)
            return predictor.predict(image, text, prev_layout=prev_layout, user_id=user_id, screen_key=screen_key)

    reader = ScreenReader(threads=1)
    rapid = logging.getLogger("RapidOCR")  # the library's own logger does not propagate: watch it too
    app = create_app(Recording(), screen_text=True, make_reader=lambda: reader.read)
    with serving_app(app, log_level="debug", access_log=True) as url, every_log_line() as lines:
        rapid.addHandler(handler := LogRecords())
        level, rapid.level = rapid.level, logging.DEBUG
        try:
            with WATCH.watching() as writes, httpx.Client(base_url=url, timeout=120) as http:
                first = http.post("/v1/predict", data={"text": ""}, files={"image": ("s.png", upload.getvalue(), "image/png")})
                screen_id = first.json()["screen_id"]
                for _ in range(1200):
                    if http.get("/healthz").json()["screens_read"] == 1:
                        break
                    threading.Event().wait(0.05)
                assert http.post("/v1/predict", data={"text": "7", "screen_id": screen_id}).status_code == 200
        finally:
            rapid.removeHandler(handler)
            rapid.setLevel(level)
    assert writes == []
    read = " ".join(line.text for line in given[-1])
    assert all(word in read for word in secret)  # the words were read and passed on ...
    captured = capfd.readouterr()
    everything = "\n".join([*lines, *handler.lines, captured.err, captured.out])
    assert any("POST /v1/predict" in line for line in lines)
    assert not any(word in everything for word in secret)  # ... and never logged

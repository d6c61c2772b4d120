"""The HTTP API against a real (untrained, tiny) Predictor: answers, screen_id reuse, every
kind of bad request answered 4xx with a message, and concurrent requests."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import make_tiny_run
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from keypilot.labels import LAYOUTS, TASKS  # noqa: E402
from keypilot.serve.app import ServeLimits, create_app  # noqa: E402
from keypilot.images import ImageLimits  # noqa: E402

RESULT_KEYS = {
    "task", "task_probs", "corrections", "completions", "suggestion", "layout", "layout_raw",
    "layout_probs", "expert_probs", "shown", "screen_cached", "timing_ms", "screen_id", "shown_kind", "withheld",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_run(tmp_path_factory.getbasetemp() / "serve-tiny")


@pytest.fixture(scope="module")
def client(tiny_run: tuple[Path, Path], one_torch_thread: None) -> Iterator[TestClient]:
    from keypilot.inference.predictor import Predictor

    run, data = tiny_run
    with TestClient(create_app(Predictor.from_pretrained(run), samples_dir=data)) as test_client:
        yield test_client


def png_bytes(size: tuple[int, int] = (180, 360), color: tuple[int, int, int] = (200, 220, 240)) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, color)
    image.paste((30, 90, 200), (0, 0, size[0], size[1] // 8))  # a "title bar"
    image.save(out, format="PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge canvas in a few bytes: a decompression-bomb probe."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


SCREEN = png_bytes()


def post_form(client: TestClient, image: bytes | None = SCREEN, **fields: str):
    files = {"image": ("screen.png", image, "image/png")} if image is not None else None
    return client.post("/v1/predict", data=fields, files=files)


def assert_result(answer: dict) -> None:
    assert set(answer) == RESULT_KEYS
    assert answer["task"] in TASKS and answer["layout"] in LAYOUTS and answer["layout_raw"] in LAYOUTS
    assert set(answer["layout_probs"]) == set(LAYOUTS)
    assert sum(answer["layout_probs"].values()) == pytest.approx(1.0, abs=1e-3)
    assert all(isinstance(c["text"], str) and 0.0 <= c["prob"] <= 1.0 for c in answer["corrections"] + answer["completions"])
    assert isinstance(answer["shown"], list)
    assert answer["shown_kind"] in ("correction", "completion", "suggestion")


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"]


def test_healthz_docs_and_page(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["backend"] == "Predictor"
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]) == {
        "multipart/form-data", "application/json", "application/x-www-form-urlencoded"}
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="keyboard"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_predict_multipart_then_screen_id_hits_the_cache(client: TestClient) -> None:
    first = post_form(client, image=png_bytes(color=(1, 2, 3)), text="See you tomo", prev_layout="EN", user_id="3")
    assert first.status_code == 200, first.text
    answer = first.json()
    assert_result(answer)
    assert answer["screen_cached"] is False
    again = post_form(client, image=None, text="See you tomor", prev_layout=answer["layout"], screen_id=answer["screen_id"])
    assert again.status_code == 200, again.text
    assert again.json()["screen_cached"] is True
    assert again.json()["screen_id"] == answer["screen_id"]


def test_predict_json_base64_same_screen_as_upload(client: TestClient) -> None:
    uploaded = post_form(client, text="").json()
    encoded = base64.b64encode(SCREEN).decode()
    for image in (encoded, "data:image/png;base64," + encoded):
        response = client.post("/v1/predict", json={"text": "", "image": image, "prev_layout": "EN", "user_id": None})
        assert response.status_code == 200, response.text
        assert_result(response.json())
        assert response.json()["screen_id"] == uploaded["screen_id"]
        assert response.json()["screen_cached"] is True
    by_id = client.post("/v1/predict", json={"text": "ok", "screen_id": uploaded["screen_id"], "user_id": 5})
    assert by_id.status_code == 200, by_id.text


def test_samples_are_listed_and_served(client: TestClient) -> None:
    samples = client.get("/v1/samples").json()["samples"]
    assert samples, "the tiny data set should give demo screens"
    first = samples[0]
    assert {"id", "image_url", "context", "prev_layout"} <= set(first)
    image = client.get(first["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] in ("image/png", "image/jpeg")
    assert_refused(client.get("/v1/samples/no-such-sample/image"), 404, "unknown_sample")


def _truncated_png() -> bytes:
    data = png_bytes(size=(300, 600), color=(12, 200, 90))
    return data[: len(data) // 2]


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 128)).save(out, format="GIF")
    return out.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"image": b"definitely not an image"}, 400, "bad_image"),
        ({"image": b""}, 400, "bad_image"),
        ({"image": _truncated_png()}, 400, "bad_image"),
        ({"image": _gif()}, 400, "bad_image"),
        ({"image": png_header_only(100_000, 100_000)}, 413, "bad_image"),
        ({"image": png_header_only(6000, 5000)}, 413, "bad_image"),
        ({"image": png_bytes(size=(20, 400))}, 400, "bad_image"),
        ({"image": png_bytes(size=(400, 20))}, 400, "bad_image"),
        ({"prev_layout": "QWERTY"}, 422, "bad_layout"),
        ({"user_id": "-1"}, 422, "bad_field"),
        ({"user_id": "abc"}, 422, "bad_field"),
        ({"user_id": str(2**40)}, 422, "bad_field"),
        ({"text": "x" * 2001}, 422, "text_too_long"),
        ({"text": None}, 422, "missing_field"),
        ({"image": None}, 422, "missing_field"),
        ({"image": None, "screen_id": "../../etc/passwd"}, 422, "bad_field"),
        ({"image": None, "screen_id": "0" * 32}, 404, "unknown_screen_id"),
        ({"colour": "blue"}, 422, "bad_field"),
    ],
    ids=[
        "not-an-image", "empty-image", "truncated", "gif", "bomb-10-gigapixel", "30-megapixel", "aspect-20",
        "aspect-1/20", "unknown-layout", "negative-user", "text-user", "huge-user", "text-too-long", "no-text",
        "no-image-no-screen-id", "bad-screen-id", "unknown-screen-id", "unknown-field",
    ],
)
def test_bad_form_requests_are_4xx(client: TestClient, kwargs: dict, status: int, code: str) -> None:
    fields = {"text": "hello", "prev_layout": "EN"}
    image = kwargs.pop("image", SCREEN)
    fields.update(kwargs)
    fields = {key: value for key, value in fields.items() if value is not None}
    assert_refused(post_form(client, image=image, **fields), status, code)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "bad_json"),
        (b"[1, 2]", 400, "bad_json"),
        (b"\xff\xfe", 400, "bad_json"),
        (json.dumps({"text": "hi", "image": "!!not base64!!"}).encode(), 400, "bad_base64"),
        (json.dumps({"text": "hi", "image": 42}).encode(), 422, "bad_field"),
        (json.dumps({"text": "hi", "image": base64.b64encode(SCREEN).decode(), "user_id": -1}).encode(), 422, "bad_field"),
        (json.dumps({"text": "hi", "image": base64.b64encode(SCREEN).decode(), "user_id": "7"}).encode(), 422, "bad_field"),
        (json.dumps({"text": "hi", "image": base64.b64encode(SCREEN).decode(), "user_id": True}).encode(), 422, "bad_field"),
        (json.dumps({"text": 5, "image": base64.b64encode(SCREEN).decode()}).encode(), 422, "bad_field"),
        (json.dumps({"image": base64.b64encode(SCREEN).decode()}).encode(), 422, "missing_field"),
        (b'{"text": "\\ud800", "screen_id": "00000000000000000000000000000000"}', 400, "bad_json"),
        (json.dumps({"text": "hi", "image": base64.b64encode(b"GIF89a junk").decode()}).encode(), 400, "bad_image"),
    ],
    ids=[
        "broken-json", "json-array", "not-utf8", "bad-base64", "image-not-string", "negative-user",
        "string-user", "bool-user", "text-not-string", "no-text", "lone-surrogate", "base64-junk-image",
    ],
)
def test_bad_json_requests_are_4xx(client: TestClient, body: bytes, status: int, code: str) -> None:
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert_refused(response, status, code)


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"text=hi", headers={"content-type": "text/plain"})
    assert_refused(response, 415, "unsupported_media_type")


def test_oversized_bodies_are_413(client: TestClient) -> None:
    big = b"\0" * (13 * 1024 * 1024)
    assert_refused(post_form(client, image=big, text="hi"), 413, "body_too_large")
    # Under the body limit but over the image limit.
    assert_refused(post_form(client, image=b"\x89PNG" + b"\0" * (9 * 1024 * 1024), text="hi"), 413, "bad_image")


def test_limits_are_configurable(tiny_run: tuple[Path, Path]) -> None:
    class Never:
        def predict(self, *args, **kwargs):
            raise AssertionError("a refused request must not reach the model")

    limits = ServeLimits(image=ImageLimits(max_bytes=2_000, max_pixels=10_000), max_body_bytes=5_000, max_text_chars=10)
    with TestClient(create_app(Never(), limits=limits)) as small:
        assert_refused(post_form(small, image=b"\0" * 6_000, text="hi"), 413, "body_too_large")
        assert_refused(post_form(small, image=png_bytes(size=(100, 200)), text="hi"), 413, "bad_image")
        assert_refused(post_form(small, text="eleven char"), 422, "text_too_long")


def test_concurrent_requests_match_sequential_answers(client: TestClient) -> None:
    texts = ["", "hel", "hello ", "我们明天jian", "ok 👍", "call 555"]
    screens = [png_bytes(color=(10 * i, 80, 160)) for i in range(3)]

    def ask(job: tuple[int, str]) -> dict:
        screen, text = job
        response = post_form(client, image=screens[screen], text=text, prev_layout="EN")
        assert response.status_code == 200, response.text
        return response.json()

    jobs = [(i % len(screens), text) for i, text in enumerate(texts)]
    sequential = [ask(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        concurrent = list(pool.map(ask, jobs))

    def stable(answer: dict) -> dict:
        return {key: value for key, value in answer.items() if key not in ("timing_ms", "screen_cached")}

    assert [stable(a) for a in concurrent] == [stable(a) for a in sequential]


def test_samples_pick_every_group_and_skip_bad_lines(tmp_path: Path) -> None:
    from keypilot.serve.samples import load_samples

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(SCREEN)
    good = {"image": "images/a.png", "context": "", "target": "x"}
    lines = [json.dumps({**good, "id": f"en-{i}", "task": "auto_completion", "layout": "EN"}) for i in range(5)]
    lines += [
        json.dumps({**good, "id": "num-0", "task": "suggestion", "layout": "NUM", "prev_layout": "EN"}),
        "{broken",
        "[1]",
        json.dumps({**good, "id": "no-image", "image": "images/missing.png", "task": "suggestion", "layout": "EN"}),
        json.dumps({**good, "id": "a/b", "task": "suggestion", "layout": "EN"}),
        json.dumps({**good, "id": "bad-layout", "task": "suggestion", "layout": "QWERTY"}),
    ]
    (tmp_path / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    picked = load_samples(tmp_path, limit=3)
    assert list(picked) == ["en-0", "num-0", "en-1"]  # groups in turn, not the first three lines
    assert set(load_samples(tmp_path)) == {f"en-{i}" for i in range(5)} | {"num-0"}


def test_load_test_end_to_end(tiny_run: tuple[Path, Path], one_torch_thread: None) -> None:
    from keypilot.serve.loadtest import run_load
    from keypilot.serve.live import serving

    with pytest.raises(ValueError, match="loopback"):
        run_load("http://192.0.2.1:8000", clients=1, seconds=0.1)
    with serving(*tiny_run) as url:
        figures = run_load(url, clients=2, seconds=2.0)
    assert figures["errors"] == 0 and figures["requests"] >= 2
    assert figures["uploads"] == 2  # then screen_id only
    assert figures["p50_ms"] <= figures["p95_ms"]


def test_small_screenshots_and_json_integers_are_accepted(client: TestClient) -> None:
    tiny = post_form(client, image=png_bytes(size=(1, 1)), text="hi")  # letterboxing scales it up
    assert tiny.status_code == 200, tiny.text
    body = {"text": "hi", "screen_id": tiny.json()["screen_id"], "user_id": 7.0}  # JSON Schema's integer
    assert client.post("/v1/predict", json=body).status_code == 200


def test_a_full_queue_is_503_with_retry_after(tiny_run: tuple[Path, Path], one_torch_thread: None) -> None:
    """Keystrokes beyond ``max_queue`` (running or waiting) are refused at once, not queued without bound."""
    import threading

    from keypilot.inference.predictor import Predictor

    class Gated:
        """The real predictor behind a gate the test opens: holds the model busy on demand."""

        def __init__(self, predictor: Predictor) -> None:
            self.predictor, self.inside, self.gate = predictor, threading.Semaphore(0), threading.Event()

        def predict(self, *args, **kwargs):
            self.inside.release()
            assert self.gate.wait(timeout=60)
            return self.predictor.predict(*args, **kwargs)

    gated = Gated(Predictor.from_pretrained(tiny_run[0]))
    with TestClient(create_app(gated, limits=ServeLimits(max_queue=2, retry_after_s=3))) as small:
        answers: list = []
        workers = [threading.Thread(target=lambda: answers.append(post_form(small, text="hel"))) for _ in range(2)]
        workers[0].start()
        assert gated.inside.acquire(timeout=60)  # the first keystroke holds the model
        workers[1].start()
        for _ in range(600):  # the second waits behind it
            if small.get("/healthz").json()["queue"] == 2:
                break
            threading.Event().wait(0.05)
        refused = post_form(small, text="help")
        assert_refused(refused, 503, "busy")
        assert refused.headers["retry-after"] == "3"
        gated.gate.set()
        for worker in workers:
            worker.join(timeout=120)
        assert [a.status_code for a in answers] == [200, 200]
        assert small.get("/healthz").json()["queue"] == 0


# ---------------------------------------------------------------------------- screen text

class Recording:
    """The real predictor, recording the ``screen_text`` each keystroke was given."""

    def __init__(self, predictor) -> None:
        self.predictor, self.given = predictor, []

    def predict(self, image, text, prev_layout="EN", user_id=None, screen_key=None, screen_text=None):
        self.given.append(screen_text)
        return self.predictor.predict(image, text, prev_layout=prev_layout, user_id=user_id, screen_key=screen_key)


@pytest.fixture(scope="module")
def screen_reader():
    pytest.importorskip("rapidocr")
    from keypilot.ocr import ScreenReader

    return ScreenReader(threads=1)


def text_png(lines: tuple[str, ...] = ("Your code is 482913",), size: tuple[int, int] = (720, 1440)) -> bytes:
    from PIL import ImageDraw, ImageFont

    image = Image.new("RGB", size, (250, 250, 252))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((40, 300 + 120 * i), line, fill=(20, 20, 30), font=ImageFont.load_default(size=34))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def wait_read(client: TestClient, count: int) -> None:
    for _ in range(1200):
        if client.get("/healthz").json()["screens_read"] >= count:
            return
        threading.Event().wait(0.05)
    raise AssertionError("the background reader did not read the screen within 60 s")



def test_screen_text_is_read_in_the_background_and_passed_on(tiny_run: tuple[Path, Path], one_torch_thread: None,
                                                              screen_reader) -> None:
    from keypilot.inference.predictor import Predictor

    recording = Recording(Predictor.from_pretrained(tiny_run[0]))
    gate = threading.Event()

    def gated_read(image):  # the real reader, held until the test has seen a keystroke answered without it
        assert gate.wait(timeout=60)
        return screen_reader.read(image)

    with TestClient(create_app(recording, screen_text=True, make_reader=lambda: gated_read)) as client:
        assert client.get("/healthz").json()["screen_text"] == "on"
        first = post_form(client, image=text_png(), text="")
        assert first.status_code == 200, first.text
        screen_id = first.json()["screen_id"]
        # Recognition is still running: keystrokes on the screen answer at once, without its text.
        second = post_form(client, image=None, text="4", screen_id=screen_id)
        assert second.status_code == 200 and recording.given == [None, None]
        gate.set()
        wait_read(client, 1)
        third = post_form(client, image=None, text="48", screen_id=screen_id)
        assert third.status_code == 200
        lines = recording.given[-1]
        assert [line.text for line in lines] == ["Your code is 482913"]
        # The same screen uploaded again is not read again.
        assert post_form(client, image=text_png(), text="482").status_code == 200
        threading.Event().wait(0.3)
        assert client.get("/healthz").json()["screens_read"] == 1


def test_screen_text_off_and_bad_screens(tiny_run: tuple[Path, Path], one_torch_thread: None, screen_reader) -> None:
    from keypilot.cli import build_parser
    from keypilot.inference.predictor import Predictor

    assert build_parser().parse_args(["serve", "--run", "r", "--no-screen-text"]).no_screen_text
    assert not build_parser().parse_args(["serve", "--run", "r"]).no_screen_text
    predictor = Predictor.from_pretrained(tiny_run[0])
    recording = Recording(predictor)
    with TestClient(create_app(recording)) as off:
        assert off.get("/healthz").json()["screen_text"] == "off"
        sid = post_form(off, image=text_png(), text="").json()["screen_id"]
        assert post_form(off, image=None, text="a", screen_id=sid).status_code == 200
        assert recording.given == [None, None]
    calls = []

    def counted(image):
        calls.append(image.size)
        return screen_reader.read(image)

    recording = Recording(predictor)
    with TestClient(create_app(recording, screen_text=True, make_reader=lambda: counted)) as client:
        # A password field: nothing is read (nor stored).
        private = post_form(client, image=text_png(), text="", input_type="password")
        assert private.status_code == 200 and private.json()["withheld"]
        # No text, rotated, tiny: answered, and read in the background to an empty or some list.
        blank = post_form(client, image=png_bytes(size=(720, 1440), color=(255, 255, 255)), text="")
        rotated = post_form(client, image=text_png(size=(1440, 720)), text="")
        assert blank.status_code == 200 and rotated.status_code == 200
        wait_read(client, 2)
        assert post_form(client, image=None, text="x", screen_id=blank.json()["screen_id"]).status_code == 200
        assert recording.given[-1] == []
        assert sorted(calls) == [(720, 1440), (1440, 720)]  # the password screen never reached the reader
        # Huge and non-image uploads are refused before anything reads them.
        assert_refused(post_form(client, image=png_header_only(8000, 8000), text=""), 413, "bad_image")
        assert_refused(post_form(client, image=b"not an image", text=""), 400, "bad_image")
        assert len(calls) == 2


def test_screen_text_unavailable_serves_without_it(tiny_run: tuple[Path, Path], one_torch_thread: None) -> None:
    from keypilot.inference.predictor import Predictor
    from keypilot.ocr.reader import OcrUnavailable

    def missing():
        raise OcrUnavailable("screen text needs the ocr extra")

    recording = Recording(Predictor.from_pretrained(tiny_run[0]))
    with TestClient(create_app(recording, screen_text=True, make_reader=missing)) as client:
        for _ in range(200):
            if client.get("/healthz").json()["screen_text"] == "unavailable":
                break
            threading.Event().wait(0.05)
        assert client.get("/healthz").json()["screen_text"] == "unavailable"
        sid = post_form(client, image=text_png(), text="").json()["screen_id"]
        assert post_form(client, image=None, text="a", screen_id=sid).status_code == 200
        assert recording.given == [None, None]

"""The HTTP API and the browser keyboard page.

``create_app(predictor)`` builds the FastAPI app around any object with the Predictor's
``predict(image, text, prev_layout, user_id, screen_key)`` method, so tests inject a tiny
real model and the CLI a trained one (torch or ONNX). The contract is ``serve/schema.py``:
its models parse every request and shape every answer, and ``/openapi.json`` is generated
from them. Every malformed request is answered 4xx with ``{"detail": message, "code":
short_code}``; a full queue 503 with ``Retry-After``; a 500 means a bug in the server or model.

Screen text (``screen_text=True``; ``keypilot serve`` turns it on unless ``--no-screen-text``):
each new screen is read in the background (``serve.screen_text``) and later keystrokes on it
pass the lines to the predictor as ``screen_text=``; no keystroke waits for a read.

Privacy: a ``password`` field (``input_type``) gets an empty answer without its screenshot
being read (by the model or by text recognition) or stored; no request's screenshot, typed
text or recognised screen text is written to disk or to a log.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keypilot import __version__
from keypilot.images import ImageLimits, ImageRejected, decode_screenshot
from keypilot.inference.privacy import is_private, withheld_prediction
from keypilot.serve.images import ScreenStore, screen_id_of
from keypilot.serve.keystroke import (
    ApiError,
    Keystroke,
    KeystrokeModels,
    read_keystroke,
)
from keypilot.serve.samples import Sample, load_samples
from keypilot.serve.screen_text import Reader, ScreenTextWorker
from keypilot.serve.schema import (
    SAMPLE_ID_PATTERN,
    Answer,
    Health,
    SampleList,
    error_responses,
    keystroke_models,
    request_body,
)

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


class Prediction(Protocol):
    shown_kind: str  # which list the strip comes from: correction, completion or suggestion

    def to_dict(self) -> dict[str, Any]:
        """The contracts' "Predictor result"."""


class Predictor(Protocol):
    def predict(self, image: Image.Image, text: str, prev_layout: str = "EN", user_id: int | None = None,
                screen_key: str | None = None) -> Prediction: ...


@dataclass(frozen=True)
class ServeLimits:
    image: ImageLimits = field(default_factory=ImageLimits)
    # Base64 inflates by 4/3, so a JSON body carrying a full-size image needs the headroom.
    max_body_bytes: int = 12 * 1024 * 1024
    max_text_chars: int = 2000
    max_user_id: int = 2**31 - 1
    # Keystrokes admitted at once (running or waiting for the model); more are answered 503.
    # Below the thread pool's 40 threads, so /healthz and the page stay responsive under load.
    max_queue: int = 32
    retry_after_s: int = 1


class ModelQueue:
    """One model call at a time, and at most ``max_queue`` keystrokes admitted (running or waiting)."""

    def __init__(self, max_queue: int, retry_after_s: int) -> None:
        self.max_queue, self.retry_after_s = max_queue, retry_after_s
        self.model_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.admitted = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        with self._count_lock:
            if self.admitted >= self.max_queue:
                raise ApiError(503, "busy", f"{self.admitted} keystrokes are already waiting for the model; retry shortly",
                               headers={"Retry-After": str(self.retry_after_s)})
            self.admitted += 1
        try:
            yield
        finally:
            with self._count_lock:
                self.admitted -= 1


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before the app parses them.

    Counting the received chunks (not only trusting Content-Length) also covers chunked uploads.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._refuse(send, total)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, size: int) -> None:
        message = f"request body of {size}+ bytes is over the limit of {self.max_bytes}"
        response = JSONResponse({"detail": message, "code": "body_too_large"}, status_code=413)
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


PREDICT_ERRORS = {
    400: "bad_json (not JSON, not UTF-8, not an object), bad_base64, bad_form (unparsable multipart), "
         "bad_image (not PNG/JPEG/WebP, empty, truncated, corrupt, aspect ratio over 8:1)",
    404: "unknown_screen_id: the screen_id is not (or no longer) stored; upload the image again",
    413: "body_too_large (over 12 MB), bad_image (file over 8 MB or over 25 megapixels)",
    415: "unsupported_media_type: send JSON, multipart/form-data or a url-encoded form",
    422: "missing_field (no text; no image, screen_id or password input_type), bad_layout, text_too_long, "
         "bad_field (wrong type, user_id out of range, malformed screen_id, unknown field, unpaired surrogate)",
    503: "busy: the model's queue is full; retry after Retry-After seconds",
}


def default_reader() -> Reader:
    """The background worker's recogniser: one ``ScreenReader`` at one intra-op thread."""
    from keypilot.ocr import ScreenReader

    return ScreenReader(threads=1).read


def accepts_screen_text(predict: Callable[..., Any]) -> bool:
    """Whether ``predict`` names a ``screen_text`` parameter (the predictors gain it with the
    screen-text channel). A bare ``**kwargs`` does not count: a wrapper forwarding it to a
    predictor without the parameter would fail."""
    try:
        return "screen_text" in inspect.signature(predict).parameters
    except (TypeError, ValueError):
        return False


def create_app(predictor: Predictor, samples_dir: Path | None = None, limits: ServeLimits | None = None,
               screen_text: bool = False, make_reader: Callable[[], Reader] = default_reader) -> FastAPI:
    """The API (``/v1/predict``, ``/v1/samples``, ``/healthz``) and the page at ``/``.

    ``screen_text``: read each new screen in the background with ``make_reader()``'s reader
    and pass the lines to later keystrokes' ``predict`` calls (when it accepts them).
    """
    limits = limits or ServeLimits()
    store = ScreenStore()
    worker = ScreenTextWorker(store, make_reader) if screen_text else None
    pass_text = accepts_screen_text(predictor.predict)
    samples: dict[str, Sample] = load_samples(Path(samples_dir)) if samples_dir else {}
    json_model, form_model = keystroke_models(limits.max_text_chars, limits.max_user_id)
    models = KeystrokeModels(json=json_model, form=form_model, max_body_bytes=limits.max_body_bytes)
    # One model call at a time: the predictor's screen cache and torch modules are shared
    # state, and on a small CPU box parallel calls only fight over the same cores.
    queue = ModelQueue(limits.max_queue, limits.retry_after_s)
    # A 25-megapixel upload decodes to 75 MB: bound how many are decoded at once.
    decode_slots = threading.BoundedSemaphore(2)

    def decode(data: bytes) -> Image.Image:
        with decode_slots:
            try:
                return decode_screenshot(data, limits.image)
            except ImageRejected as exc:
                raise ApiError(exc.status, "bad_image", str(exc)) from exc

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if worker is not None:
            worker.close()

    app = FastAPI(
        title="KeyPilot",
        version=__version__,
        description="Screen-aware keyboard: corrections, completions, a suggestion and the next layout.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    _error_handlers(app)

    @app.get("/healthz", summary="Liveness and what is loaded", response_model=Health)
    async def healthz() -> Health:
        text_state = "off" if worker is None else ("on" if worker.available else "unavailable")
        return Health(status="ok", backend=type(predictor).__name__, screens=len(store), queue=queue.admitted,
                      samples=len(samples), screen_text=text_state, screens_read=worker.screens_read if worker else 0)

    @app.post(
        "/v1/predict",
        summary="One keystroke: screenshot (or screen_id) + field text -> candidates and layout",
        response_model=Answer,
        responses=error_responses(PREDICT_ERRORS, retry_after=True),
        openapi_extra={"requestBody": request_body(json_model)},
    )
    async def predict(request: Request) -> Answer:
        keystroke = await read_keystroke(request, models)
        if is_private(keystroke.input_type):
            # Nothing is decoded, stored, looked up or predicted for a password field.
            return _answer(withheld_prediction(keystroke.prev_layout), screen_id=None, withheld=True)
        with queue.admit():
            screen_id, image = await _screen(keystroke, store, decode)
            extra: dict[str, Any] = {}
            if worker is not None:
                lines = store.text(screen_id)
                if lines is None:
                    worker.submit(screen_id, image)  # never waits: this keystroke answers without the text
                elif pass_text:
                    extra["screen_text"] = lines

            def run_model() -> Prediction:
                with queue.model_lock:
                    # screen_id already names these pixels (a hash of the upload): no need to hash them again.
                    return predictor.predict(image, keystroke.text, prev_layout=keystroke.prev_layout,
                                             user_id=keystroke.user_id, screen_key=screen_id, **extra)

            result = await run_in_threadpool(run_model)
        return _answer(result, screen_id=screen_id, withheld=False)

    @app.get("/v1/samples", summary="Demo screens from the data set given at start-up", response_model=SampleList)
    async def list_samples() -> SampleList:
        return SampleList(samples=[sample.to_json() for sample in samples.values()])

    @app.get(
        "/v1/samples/{sample_id}/image",
        summary="A demo screen's screenshot",
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The screenshot."},
                   **error_responses({404: "unknown_sample: no demo sample with that id",
                                      422: "bad_field: not a sample id"})},
    )
    async def sample_image(sample_id: Annotated[str, PathParam(pattern=SAMPLE_ID_PATTERN)]) -> FileResponse:
        sample = samples.get(sample_id)
        if sample is None:
            raise ApiError(404, "unknown_sample", f"no sample with id {sample_id!r}")
        return FileResponse(sample.image_path)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


async def _screen(keystroke: Keystroke, store: ScreenStore, decode: Any) -> tuple[str, Image.Image]:
    """The keystroke's screen id and decoded screenshot: the upload (decoded once per id), or the stored one."""
    if keystroke.image_bytes is not None:
        screen_id = screen_id_of(keystroke.image_bytes)
        image = store.get(screen_id)
        if image is None:
            image = store.put(screen_id, await run_in_threadpool(decode, keystroke.image_bytes))
        return screen_id, image
    image = store.get(keystroke.screen_id)
    if image is None:
        raise ApiError(404, "unknown_screen_id",
                       f"screen_id {keystroke.screen_id} is not (or no longer) stored; upload the image again")
    return keystroke.screen_id, image


def _answer(result: Prediction, screen_id: str | None, withheld: bool) -> Answer:
    """The response, built (and so checked) through the contract's model."""
    return Answer.model_validate({**result.to_dict(), "shown_kind": None if withheld else result.shown_kind,
                                  "screen_id": screen_id, "withheld": withheld})


def _error_handlers(app: FastAPI) -> None:
    """Every non-200 answer in the one body shape, ``ErrorBody``."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"]) if exc.errors() else "request"
        return JSONResponse({"detail": f"{where}: {exc.errors()[0]['msg'] if exc.errors() else 'invalid'}",
                             "code": "bad_field"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_field")
        return JSONResponse({"detail": str(exc.detail), "code": code}, status_code=exc.status_code, headers=exc.headers)


def serve(
    run: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    samples_dir: Path | None = None,
    access_log: bool = True,
    threads: int | None = None,
    int8: bool = False,
    screen_text: bool = True,
) -> int:
    """Load the run's predictor and serve until interrupted (``keypilot serve``).

    Without ``samples_dir`` the page offers the screens of ``RUN-data`` beside the run when
    that folder exists (where ``keypilot demo`` puts its data set). ``threads``: intra-op
    threads of the model (model calls are serialized, so more threads only help one call);
    ``int8``: the export's INT8 graphs (ONNX backend); ``screen_text``: read each new screen's
    text in the background (off: ``keypilot serve --no-screen-text``).
    """
    import uvicorn

    from keypilot.run_folder import EXPORT_DIR, MANIFEST_FILE, export_folder

    if backend == "onnx":
        from keypilot.inference.onnx_predictor import OnnxPredictor

        # Either an export folder itself or a run with its export in RUN/export.
        export_dir = export_folder(run)
        if export_dir is None:
            raise FileNotFoundError(f"no ONNX export ({MANIFEST_FILE}) at {run} or {run / EXPORT_DIR}: export the run first")
        predictor: Predictor = OnnxPredictor.from_pretrained(export_dir, threads=threads or 1, int8=int8)
    else:
        import torch

        from keypilot.inference.predictor import Predictor as TorchPredictor

        if threads:
            torch.set_num_threads(threads)
        predictor = TorchPredictor.from_pretrained(run)
    if samples_dir is None:
        # `keypilot demo` writes its data set beside the run as RUN-data.
        sibling = run.parent / f"{run.name}-data"
        samples_dir = sibling if sibling.is_dir() else None
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: the API has no authentication; anyone who can reach it can use it", host)
    uvicorn.run(create_app(predictor, samples_dir=samples_dir, screen_text=screen_text), host=host, port=port,
                access_log=access_log)
    return 0

"""The HTTP API and the browser keyboard page.

``create_app(predictor)`` builds the FastAPI app around any object with the Predictor's
``predict(image, text, prev_layout, user_id, screen_key)`` method, so tests inject a tiny
real model and the CLI a trained one (torch or ONNX). Every malformed request is answered
4xx with a JSON body ``{"detail": message, "code": short_code}``; a 5xx means a bug in the
server or model.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keypilot.labels import LAYOUTS
from keypilot.images import ImageLimits, ImageRejected, decode_screenshot
from keypilot.serve.images import ScreenStore, screen_id_of
from keypilot.serve.samples import Sample, load_samples

STATIC_DIR = Path(__file__).parent / "static"
SCREEN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
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


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class PredictJson(BaseModel):
    """The JSON form of a keystroke request (the multipart form has the same fields)."""

    text: str = Field(description="Text already in the focused field, C_t (may be empty).")
    image: str | None = Field(None, description="Screenshot, base64 (a data: URL prefix is accepted). Or send screen_id.")
    screen_id: str | None = Field(None, description="Id returned by an earlier answer; replaces the upload.")
    prev_layout: str = Field("EN", description="Layout shown now: " + ", ".join(LAYOUTS))
    user_id: int | None = Field(None, ge=0, description="Stable user id for the personality embedding.")


@dataclass
class Keystroke:
    text: str
    prev_layout: str
    user_id: int | None
    image_bytes: bytes | None
    screen_id: str | None


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


def create_app(predictor: Predictor, samples_dir: Path | None = None, limits: ServeLimits | None = None) -> FastAPI:
    """The API (``/v1/predict``, ``/v1/samples``, ``/healthz``) and the page at ``/``.

    An answer is the predictor's result JSON plus ``screen_id`` (send it instead of the image
    on the next keystrokes) and ``shown_kind`` (the list the strip ``shown`` comes from).
    """
    limits = limits or ServeLimits()
    store = ScreenStore()
    samples: dict[str, Sample] = load_samples(Path(samples_dir)) if samples_dir else {}
    # One model call at a time: the predictor's screen cache and torch modules are shared
    # state, and on a small CPU box parallel calls only fight over the same cores.
    predict_lock = threading.Lock()
    # A 25-megapixel upload decodes to 75 MB: bound how many are decoded at once.
    decode_slots = threading.BoundedSemaphore(2)

    def decode(data: bytes) -> Image.Image:
        with decode_slots:
            return _decode(data, limits.image)

    app = FastAPI(
        title="KeyPilot",
        version="0.1.0",
        description="Screen-aware keyboard: corrections, completions, a suggestion and the next layout.",
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status)

    @app.get("/healthz", summary="Liveness and what is loaded")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "backend": type(predictor).__name__, "screens": len(store), "samples": len(samples)}

    @app.post(
        "/v1/predict",
        summary="One keystroke: screenshot (or screen_id) + field text -> candidates and layout",
        openapi_extra=_predict_openapi(),
    )
    async def predict(request: Request) -> JSONResponse:
        keystroke = await _parse_keystroke(request, limits)
        if keystroke.image_bytes is not None:
            screen_id = screen_id_of(keystroke.image_bytes)
            image = store.get(screen_id)
            if image is None:
                image = await run_in_threadpool(decode, keystroke.image_bytes)
                image = store.put(screen_id, image)
        else:
            screen_id = keystroke.screen_id
            image = store.get(screen_id)
            if image is None:
                raise ApiError(404, "unknown_screen_id", f"screen_id {screen_id} is not (or no longer) stored; upload the image again")

        def run_model() -> dict[str, Any]:
            with predict_lock:
                # screen_id already names these pixels (a hash of the upload): no need to hash them again.
                result = predictor.predict(image, keystroke.text, prev_layout=keystroke.prev_layout,
                                           user_id=keystroke.user_id, screen_key=screen_id)
            answer = result.to_dict()
            # Not in the predictor's JSON, but the page needs it: what a tap on the strip replaces.
            answer["shown_kind"] = result.shown_kind
            return answer

        answer = await run_in_threadpool(run_model)
        answer["screen_id"] = screen_id
        return JSONResponse(answer)

    @app.get("/v1/samples", summary="Demo screens from the data set given at start-up")
    def list_samples() -> dict[str, Any]:
        return {"samples": [sample.to_json() for sample in samples.values()]}

    @app.get("/v1/samples/{sample_id}/image", summary="A demo screen's screenshot", response_class=FileResponse)
    def sample_image(sample_id: str) -> FileResponse:
        sample = samples.get(sample_id)
        if sample is None:
            raise ApiError(404, "unknown_sample", f"no sample with id {sample_id!r}")
        return FileResponse(sample.image_path)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _decode(data: bytes, limits: ImageLimits) -> Image.Image:
    try:
        return decode_screenshot(data, limits)
    except ImageRejected as exc:
        raise ApiError(exc.status, "bad_image", str(exc)) from exc


async def _parse_keystroke(request: Request, limits: ServeLimits) -> Keystroke:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        # A url-encoded form can carry no file, but is fine for keystrokes sending a screen_id.
        fields = await _read_form(request)
    elif content_type == "application/json":
        fields = await _read_json(request)
    else:
        raise ApiError(
            415, "unsupported_media_type", "send multipart/form-data (file field 'image') or application/json (base64 'image')"
        )
    return _validate(fields, limits)


async def _read_form(request: Request) -> dict[str, Any]:
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as exc:  # Starlette raises several types for malformed multipart bodies.
        raise ApiError(400, "bad_form", f"the form body could not be parsed: {exc}") from exc
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != "image":
                raise ApiError(422, "bad_field", f"unexpected file field {key!r}; the screenshot goes in 'image'")
            fields["image"] = await value.read()
        elif key == "image":
            raise ApiError(422, "bad_field", "'image' must be a file part of a multipart request")
        else:
            fields[key] = value
    # Browsers send empty strings for blank form fields: treat them as absent.
    for key in ("user_id", "screen_id", "prev_layout"):
        if fields.get(key) == "":
            del fields[key]
    if "user_id" in fields:
        fields["user_id"] = _parse_user_id(fields["user_id"])
    return fields


async def _read_json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the JSON body must be an object")
    fields = {key: value for key, value in body.items() if value is not None}
    if "image" in fields:
        if not isinstance(fields["image"], str):
            raise ApiError(422, "bad_field", "'image' must be a base64 string")
        fields["image"] = _b64decode(fields["image"])
    if "user_id" in fields and (isinstance(fields["user_id"], bool) or not isinstance(fields["user_id"], int)):
        raise ApiError(422, "bad_field", "'user_id' must be a non-negative integer")
    return fields


def _b64decode(text: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "bad_base64", f"'image' is not valid base64: {exc}") from exc


def _parse_user_id(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise ApiError(422, "bad_field", f"'user_id' must be a non-negative integer, got {value[:40]!r}")
    return int(value)


def _validate(fields: dict[str, Any], limits: ServeLimits) -> Keystroke:
    unknown = sorted(set(fields) - set(PredictJson.model_fields))
    if unknown:
        raise ApiError(422, "bad_field", f"unknown field(s) {', '.join(unknown)}; expected {', '.join(PredictJson.model_fields)}")
    text = fields.get("text")
    if text is None:
        raise ApiError(422, "missing_field", "'text' is required (the field's current text; may be empty)")
    if not isinstance(text, str):
        raise ApiError(422, "bad_field", "'text' must be a string")
    if len(text) > limits.max_text_chars:
        raise ApiError(413, "text_too_long", f"'text' has {len(text)} characters; the limit is {limits.max_text_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(422, "bad_field", "'text' contains unpaired surrogates") from exc
    prev_layout = fields.get("prev_layout", "EN")
    if prev_layout not in LAYOUTS:
        raise ApiError(422, "bad_layout", f"unknown prev_layout {str(prev_layout)[:40]!r}; expected one of {', '.join(LAYOUTS)}")
    user_id = fields.get("user_id")
    if user_id is not None and not 0 <= user_id <= limits.max_user_id:
        raise ApiError(422, "bad_field", f"'user_id' must be between 0 and {limits.max_user_id}, got {user_id}")
    image = fields.get("image")
    screen_id = fields.get("screen_id")
    if image is None and screen_id is None:
        raise ApiError(422, "missing_field", "send the screenshot as 'image' or the 'screen_id' of an earlier upload")
    if image is None and (not isinstance(screen_id, str) or not SCREEN_ID_RE.match(screen_id)):
        raise ApiError(422, "bad_field", "'screen_id' must be the 32 hex characters an earlier answer returned")
    return Keystroke(text=text, prev_layout=prev_layout, user_id=user_id, image_bytes=image, screen_id=screen_id)


def _predict_openapi() -> dict[str, Any]:
    schema = PredictJson.model_json_schema()
    form = json.loads(json.dumps(schema))
    form["properties"]["image"] = {"type": "string", "format": "binary", "description": "Screenshot file (PNG, JPEG, WebP)."}
    form["title"] = "PredictForm"
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": form},
        "application/json": {"schema": schema},
    }}}


def serve(
    run: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    samples_dir: Path | None = None,
    access_log: bool = True,
    threads: int | None = None,
    int8: bool = False,
) -> int:
    """Load the run's predictor and serve until interrupted (``keypilot serve``).

    Without ``samples_dir`` the page offers the screens of ``RUN-data`` beside the run when
    that folder exists (where ``keypilot demo`` puts its data set). ``threads``: intra-op
    threads of the model (model calls are serialized, so more threads only help one call);
    ``int8``: the export's INT8 graphs (ONNX backend).
    """
    import uvicorn

    if backend == "onnx":
        from keypilot.inference.onnx_predictor import MANIFEST_FILE, OnnxPredictor

        # Either an export folder itself or a run with its export in RUN/export.
        export_dir = run if (run / MANIFEST_FILE).is_file() else run / "export"
        if not (export_dir / MANIFEST_FILE).is_file():
            raise SystemExit(f"no ONNX export at {run} or {run / 'export'}: export the run first")
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
    uvicorn.run(create_app(predictor, samples_dir=samples_dir), host=host, port=port, access_log=access_log)
    return 0

"""Reading one keystroke request: the body, by its content type, through the schema's models.

JSON is parsed by ``KeystrokeJson`` (``"7"`` and ``true`` are not user ids, ``7.0`` is, as in
JSON Schema), a form by ``KeystrokeForm`` (form fields are text, so ``"7"`` is); every mistake becomes an ``ApiError``
with the status and code the OpenAPI document promises. Uploads are kept in memory: a
screenshot is never spooled to a temporary file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from keypilot.labels import LAYOUTS


class ApiError(Exception):
    """An answer other than 200: ``{"detail": message, "code": code}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


@dataclass
class Keystroke:
    text: str
    prev_layout: str
    user_id: int | None
    image_bytes: bytes | None
    screen_id: str | None
    input_type: str | None


@dataclass(frozen=True)
class KeystrokeModels:
    json: type[BaseModel]
    form: type[BaseModel]
    max_body_bytes: int


def in_memory_multipart(max_bytes: int) -> type[MultiPartParser]:
    """Starlette's multipart parser, holding file parts up to ``max_bytes`` in memory: an upload
    is never spooled to a temporary file on disk."""
    return type("InMemoryMultiPartParser", (MultiPartParser,), {"spool_max_size": max_bytes + 1})


async def read_keystroke(request: Request, models: KeystrokeModels) -> Keystroke:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = await request.body()
        parsed = _validate(lambda: models.json.model_validate_json(body))
    elif content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields = await _read_form(request, content_type, models.max_body_bytes)
        parsed = _validate(lambda: models.form.model_validate(fields))
    else:
        raise ApiError(415, "unsupported_media_type",
                       "send multipart/form-data (file field 'image'), application/json (base64 'image') or "
                       "application/x-www-form-urlencoded (with 'screen_id')")
    input_type = parsed.input_type.value if parsed.input_type is not None else None
    return Keystroke(text=parsed.text, prev_layout=parsed.prev_layout.value, user_id=parsed.user_id, image_bytes=parsed.image,
                     screen_id=parsed.screen_id, input_type=input_type)


async def _read_form(request: Request, content_type: str, max_bytes: int) -> dict[str, Any]:
    try:
        if content_type == "multipart/form-data":
            parser = in_memory_multipart(max_bytes)(request.headers, request.stream(), max_files=1, max_fields=16)
            form = await parser.parse()
        else:
            form = await request.form(max_files=0, max_fields=16)
    except (MultiPartException, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_form", f"the form body could not be parsed: {exc}") from exc
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != "image":
                raise ApiError(422, "bad_field", f"unexpected file field {key[:40]!r}; the screenshot goes in 'image'")
            fields["image"] = await value.read()
        elif key == "image":
            raise ApiError(422, "bad_field", "'image' must be a file part of a multipart request")
        else:
            fields[key] = value
    return fields


def _validate(parse: Any) -> Any:
    try:
        return parse()
    except ValidationError as err:
        raise _api_error(err.errors(include_url=False)) from None


def _api_error(errors: list[dict[str, Any]]) -> ApiError:
    """The first problem's status and code; every problem in the message."""
    found = [_describe(error) for error in errors]
    status, code, _ = found[0]
    return ApiError(status, code, "; ".join(dict.fromkeys(message for _, _, message in found)))


def _describe(error: dict[str, Any]) -> tuple[int, str, str]:
    kind, loc = error["type"], error["loc"]
    field = str(loc[0]) if loc else ""
    if kind == "json_invalid":
        return 400, "bad_json", f"the body is not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        return 400, "bad_json", "the JSON body must be an object"
    if kind == "missing":
        return 422, "missing_field", f"'{field}' is required (the field's current text; may be empty)"
    if kind == "extra_forbidden":
        return 422, "bad_field", f"unknown field {field[:40]!r}; expected text, image, screen_id, prev_layout, user_id, input_type"
    if not loc and kind == "value_error":  # the model's own rule: a screen is needed
        return 422, "missing_field", str(error["ctx"]["error"])
    if field == "text" and kind == "string_too_long":
        return 422, "text_too_long", f"'text' has more than {error['ctx']['max_length']} characters"
    if field == "prev_layout":
        return 422, "bad_layout", f"unknown prev_layout {str(error.get('input'))[:40]!r}; expected one of {', '.join(LAYOUTS)}"
    if field == "image" and kind == "value_error":
        return 400, "bad_base64", str(error["ctx"]["error"])
    if field == "screen_id":
        return 422, "bad_field", "'screen_id' must be the 32 hex characters an earlier answer returned"
    if field == "user_id":
        return 422, "bad_field", f"'user_id' must be an integer 0 ... 2^31-1, got {str(error.get('input'))[:40]!r}"
    if kind == "value_error":
        return 422, "bad_field", str(error["ctx"]["error"])
    return 422, "bad_field", f"'{field}': {error['msg']}"

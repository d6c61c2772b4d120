"""The HTTP API's contract: the pydantic models that parse every request and shape every answer.

The OpenAPI document (``/openapi.json``) is generated from these models, so what it says is
what the server checks: a request is parsed by ``KeystrokeJson`` / ``KeystrokeForm`` (built per
app by ``keystroke_models`` from its limits), an answer is built through ``Answer``, an error
is an ``ErrorBody``. Labels are enums of ``keypilot.labels``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from keypilot.labels import INPUT_TYPES, LAYOUTS, TASKS

Layout = Enum("Layout", {name: name for name in LAYOUTS}, type=str, module=__name__)
Task = Enum("Task", {name: name for name in TASKS}, type=str, module=__name__)
InputType = Enum("InputType", {name: name for name in INPUT_TYPES}, type=str, module=__name__)


class ShownKind(str, Enum):
    """Which list the strip comes from: what tapping a candidate replaces."""

    correction = "correction"
    completion = "completion"
    suggestion = "suggestion"


class ErrorCode(str, Enum):
    bad_image = "bad_image"
    bad_json = "bad_json"
    bad_base64 = "bad_base64"
    bad_form = "bad_form"
    unknown_screen_id = "unknown_screen_id"
    unknown_sample = "unknown_sample"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    body_too_large = "body_too_large"
    unsupported_media_type = "unsupported_media_type"
    missing_field = "missing_field"
    bad_field = "bad_field"
    bad_layout = "bad_layout"
    text_too_long = "text_too_long"
    busy = "busy"


SCREEN_ID_PATTERN = r"^[0-9a-f]{32}$"
SAMPLE_ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp")

ScreenId = Annotated[str, StringConstraints(pattern=SCREEN_ID_PATTERN)]


def _base64_bytes(text: str) -> bytes:
    payload = text.partition(",")[2] if text.startswith("data:") else text
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("'image' is not valid base64 (standard alphabet, padded; a data: URL prefix is accepted)") from None
    if not data:
        raise ValueError("'image' is empty")
    return data


def _json_integer(value: Any) -> Any:
    # JSON Schema's "integer" is any number without a fraction (1.0 too), but never a string or true.
    if isinstance(value, (str, bool)):
        raise ValueError(f"must be an integer, not {type(value).__name__}")
    return value


# The JSON screenshot: a base64 string ("format: byte" in OpenAPI), parsed into its bytes.
Base64Image = Annotated[str, AfterValidator(_base64_bytes), WithJsonSchema({"type": "string", "format": "byte"})]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: what is wrong, in words, and a short code to branch on."""

    detail: str = Field(description="What is wrong and what to do.")
    code: ErrorCode


# ---------------------------------------------------------------------------- requests

def keystroke_models(max_text_chars: int, max_user_id: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """The JSON and the form model of one keystroke request, with this server's limits."""

    class KeystrokeJson(BaseModel):
        """One keystroke as JSON: the screenshot base64 in ``image``, or the ``screen_id`` of an
        earlier upload, or neither for a password field."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"anyOf": [
                {"required": ["image"], "properties": {"image": {"type": "string"}}},
                {"required": ["screen_id"], "properties": {"screen_id": {"type": "string"}}},
                {"required": ["input_type"], "properties": {"input_type": {"const": "password"}}},
            ]},
        )  # fmt: skip

        text: StrictStr = Field(max_length=max_text_chars, description=(
            "Text already in the focused field, C_t (may be empty). For Chinese it may end with the pinyin being "
            "composed."))
        image: Base64Image | None = Field(None, description=(
            f"The screenshot ({', '.join(IMAGE_MEDIA_TYPES)}), base64; a data: URL prefix is accepted. Used when "
            "both image and screen_id are given."))
        screen_id: ScreenId | None = Field(None, description="The id an earlier answer returned for this screenshot.")
        prev_layout: Layout = Field(Layout.EN, description="The layout shown now (hysteresis starts from it).")
        user_id: Annotated[int, Field(ge=0, le=max_user_id), BeforeValidator(_json_integer)] | None = Field(
            None, description="Stable user id for the personality embedding; absent: unknown user.")
        input_type: InputType | None = Field(None, description=(
            "What the app declares the field is (like Android's EditorInfo). For password nothing is read, "
            "predicted or kept, and neither image nor screen_id is needed."))

        @field_validator("text")
        @classmethod
        def _encodable(cls, text: str) -> str:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("'text' contains unpaired surrogates") from None
            return text

        @model_validator(mode="after")
        def _has_a_screen(self) -> KeystrokeJson:
            if self.image is None and self.screen_id is None and self.input_type != InputType.password:
                raise ValueError("send the screenshot as 'image' or the 'screen_id' of an earlier upload")
            return self

    class KeystrokeForm(KeystrokeJson):
        """One keystroke as a form: the screenshot as the file part ``image`` (multipart)."""

        image: bytes | None = Field(None, description="The screenshot file.")
        user_id: Annotated[int, Field(ge=0, le=max_user_id)] | None = None  # a form field's "7" is 7

    return KeystrokeJson, KeystrokeForm


def _no_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A property schema without its ``null`` alternative: a form field is absent, never null."""
    options = schema.get("anyOf")
    if options and any(o == {"type": "null"} for o in options):
        rest = [o for o in options if o != {"type": "null"}]
        schema = {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")}, **rest[0]} if len(rest) == 1 \
            else {**schema, "anyOf": rest}
    return schema


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """``schema`` with every ``$ref`` to ``definitions`` replaced by the definition itself."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline({**definitions[ref.removeprefix("#/$defs/")], **{k: v for k, v in schema.items() if k != "$ref"}},
                           definitions)
        return {key: _inline(value, definitions) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    return schema


def request_body(json_model: type[BaseModel]) -> dict[str, Any]:
    """The ``requestBody`` of ``POST /v1/predict``: JSON, multipart and url-encoded forms."""
    raw = json_model.model_json_schema()
    schema = _inline({k: v for k, v in raw.items() if k != "$defs"}, raw.get("$defs", {}))
    schema["title"] = "KeystrokeJson"
    multipart = copy.deepcopy(schema)
    multipart["title"] = "KeystrokeMultipart"
    multipart["description"] = ("One keystroke as a multipart form: the screenshot as the file part 'image', or the "
                                "'screen_id' of an earlier upload, or neither for a password field.")
    multipart["properties"] = {name: _no_null(prop) for name, prop in multipart["properties"].items()}
    multipart["properties"]["image"] = {"type": "string", "format": "binary",
                                        "description": f"The screenshot file ({', '.join(IMAGE_MEDIA_TYPES)})."}
    # A url-encoded form carries no file: the screen is a screen_id (or there is none, for a password).
    urlencoded = copy.deepcopy(multipart)
    urlencoded["title"] = "KeystrokeUrlencoded"
    urlencoded["description"] = "One keystroke as a url-encoded form: with the 'screen_id' of an earlier upload."
    del urlencoded["properties"]["image"]
    urlencoded["anyOf"] = [option for option in urlencoded["anyOf"] if option["required"] != ["image"]]
    return {"required": True, "content": {
        "application/json": {"schema": schema},
        "multipart/form-data": {"schema": multipart, "encoding": {"image": {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}}},
        "application/x-www-form-urlencoded": {"schema": urlencoded},
    }}


# ---------------------------------------------------------------------------- answers

class CandidateSource(str, Enum):
    prior = "prior"  # the priors' candidate, re-scored by the network
    network = "network"  # the decoder's own


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    prob: Probability
    source: CandidateSource = Field(description="prior: from the field's priors, re-scored by the network; "
                                                "network: the decoder's own.")


class TimingMs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screen: float = Field(ge=0, description="Encoding the screenshot; 0 when it came from the cache.")
    priors: float = Field(0.0, ge=0, description="The priors' candidates and features for the text.")
    network: float = Field(0.0, ge=0, description="The keystroke pass: text encoder, fusion, routers.")
    candidates: float = Field(0.0, ge=0, description="Ranking the candidates (the decoder's first token fused with the prior).")
    suggestion: float = Field(0.0, ge=0, description="Decoding the suggestion (0 when kept from an earlier keystroke).")
    keystroke: float = Field(ge=0, description="Everything after the screen: priors, network, candidates, suggestion.")
    total: float = Field(ge=0)


class Answer(BaseModel):
    """The predictor's result ("Predictor result" in docs/contracts.md) and what the server adds."""

    model_config = ConfigDict(extra="forbid")

    task: Task | None = Field(description="The task router's choice; null when nothing was predicted (password).")
    task_probs: dict[Task, Probability]
    corrections: list[Candidate] = Field(description="Corrections of the last word, best first.")
    completions: list[Candidate] = Field(description="Completions of the word being typed (or the next word).")
    suggestion: Candidate | None = Field(description="A reply, only when the field is empty.")
    layout: Layout = Field(description="The layout to show next (after hysteresis).")
    layout_raw: Layout = Field(description="The layout router's choice before hysteresis.")
    layout_probs: dict[Layout, Probability]
    expert_probs: dict[Layout, Probability] = Field(description="The language experts' weights.")
    shown: list[str] = Field(description="The strip, in priority order (up to 3).")
    shown_kind: ShownKind | None = Field(description="The list the strip comes from; null when nothing was predicted.")
    screen_cached: bool = Field(description="The screen's encoding came from the cache.")
    timing_ms: TimingMs
    screen_id: ScreenId | None = Field(description=(
        "Send it instead of the image with the next keystrokes on this screen; null when no screenshot was taken in "
        "(password)."))
    withheld: bool = Field(description="True for a private field (input_type password): nothing was read or predicted.")


class Health(BaseModel):
    status: str = Field(description='"ok"')
    backend: str = Field(description="The predictor's class: Predictor (torch) or OnnxPredictor.")
    screens: int = Field(ge=0, description="Uploaded screens held for screen_id.")
    queue: int = Field(ge=0, description="Keystrokes admitted now (running or waiting for the model).")
    samples: int = Field(ge=0, description="Demo samples offered by the page.")
    screen_text: str = Field(description='Background reading of screen text: "on", "off" or "unavailable" '
                                         "(the ocr extra is not installed).")
    screens_read: int = Field(ge=0, description="Screens whose text the background reader has read.")


class SampleInfo(BaseModel):
    id: Annotated[str, StringConstraints(pattern=SAMPLE_ID_PATTERN)]
    image_url: str
    context: str
    prev_layout: Layout
    layout: Layout
    task: Task
    target: str


class SampleList(BaseModel):
    samples: list[SampleInfo]


# ---------------------------------------------------------------------------- error statuses

def error_responses(codes: dict[int, str], retry_after: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses: each an ``ErrorBody`` and which codes it carries."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": description} for status, description in codes.items()
    }
    if retry_after and 503 in responses:
        responses[503]["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 1}}}
    return responses


def is_sample_id(text: str) -> bool:
    return re.match(SAMPLE_ID_PATTERN, text) is not None

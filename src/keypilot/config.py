"""YAML configs, checked by pydantic: types and values, with errors that name the key.

A config has two sections, ``model`` and ``training``; each block of the YAML is one class
below (a pydantic dataclass: ``dataclasses.asdict`` and ``dataclasses.replace`` work on it).
``load_config(path_or_name)`` returns the validated YAML as a plain dict with every default
filled in (what ``KeyPilotModel.from_config`` and ``KeyPilotLoss(**config['training']['loss'])``
take); ``parse_config`` gives the typed view. A config is a file path or the name of one the
package ships (``tiny``, ``keypilot``: ``SHIPPED_CONFIGS``), so ``--config tiny`` works from
any directory.

Mistakes are ``ConfigError``s such as ``training.batch_size: must be >= 1, got -4``; unknown
keys are errors too, so a misspelt key is never silently ignored.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import ConfigDict, Field, PlainValidator, Strict, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from pydantic.dataclasses import dataclass

SHIPPED_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the key."""


# Strict: YAML "256" is a string and true is not 1. A float also takes an integer (lr: 1).
Int = Annotated[int, Strict()]
Count = Annotated[int, Strict(), Field(ge=1)]  # sizes, steps, layers: at least 1
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
Dropout = Annotated[float, Strict(), Field(ge=0, lt=1)]
Bool = Annotated[bool, Strict()]

_SECTION = ConfigDict(extra="forbid")


def _auto_or_bool(value: Any) -> bool | str:
    if value == "auto" or isinstance(value, bool):
        return value
    raise PydanticCustomError("auto_or", "expected auto, true or false")


def _auto_or_count(value: Any) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise PydanticCustomError("auto_or", "expected auto or a count >= 0")


# ``auto`` (the code decides for the machine at hand) or a value.
AutoBool = Annotated[bool | str, PlainValidator(_auto_or_bool)]
AutoCount = Annotated[int | str, PlainValidator(_auto_or_count)]


def _divides(width: int, width_name: str, heads: int, where: str) -> None:
    if width % heads:
        raise ValueError(f"{where}: {heads} attention heads do not divide {width_name} = {width}")


@dataclass(config=_SECTION)
class BackboneConfig:
    width_multiplier: PositiveFloat = 0.75
    stage_channels: list[Count] = field(default_factory=lambda: [16, 24, 48, 64, 320])
    transformer_dims: list[Count] = field(default_factory=lambda: [64, 80, 96])
    transformer_depths: list[Count] = field(default_factory=lambda: [2, 4, 3])
    dense_channels: Count = 192
    # The previous design when absent (so runs saved before these keys load unchanged);
    # configs/keypilot.yaml and tiny.yaml set the current one (docs/architecture.md).
    attention: Literal["softmax", "linear"] = "softmax"
    activation: Literal["silu", "relu"] = "silu"


@dataclass(config=_SECTION)
class TextEncoderConfig:
    hidden: Count = 312
    layers: Count = 2
    heads: Count = 12
    ffn: Count = 1248
    dropout: Dropout = 0.1
    # Read the decoder's token table (d_model wide) through a d_model -> hidden projection
    # instead of a table of its own: 10 MB less INT8 at the reference size, but on the demo
    # 4-5 points of validation layout accuracy less, so off (docs/architecture.md).
    shared_embedding: Bool = False

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TextEncoderConfig:
        _divides(self.hidden, "hidden", self.heads, "heads")
        return self


@dataclass(config=_SECTION)
class PersonalityConfig:
    num_users: Count = 4096
    dim: Count = 64


@dataclass(config=_SECTION)
class FusionConfig:
    heads: Count = 8
    ffn: Count = 1024
    layers: Count = 1
    dropout: Dropout = 0.1


@dataclass(config=_SECTION)
class TaskRouterConfig:
    hidden: Count = 128
    mix_threshold: Probability = 0.7


@dataclass(config=_SECTION)
class LayoutRouterConfig:
    layers: Count = 2
    heads: Count = 8
    ffn: Count = 1024
    hysteresis_bias: Float = 0.3
    switch_threshold: Probability = 0.8


@dataclass(config=_SECTION)
class MoEConfig:
    router_hidden: Count = 128
    router_dropout: Dropout = 0.1
    heads: Count = 8
    ffn: Count = 1024
    hint_bias: Float = 0.4
    top1_threshold: Probability = 0.7


@dataclass(config=_SECTION)
class DecoderConfig:
    beam_width: Count = 4
    num_candidates: Count = 5


@dataclass(config=_SECTION)
class ModelConfig:
    vocab_size: Count = 32000
    d_model: Count = 256
    image_height: Count = 512
    image_width: Count = 256
    roi_size: Count = 112
    roi_tokens: Literal["crops", "pooled"] = "crops"  # see BackboneConfig.attention
    max_context_tokens: Count = 64
    max_target_tokens: Count = 5
    pretrained: Bool = False
    # Width of the priors' feature vector the routers read (keypilot.priors.NUM_FEATURES);
    # 0 = a model without prior inputs.
    prior_features: NonNegInt = 0
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    personality: PersonalityConfig = field(default_factory=PersonalityConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    task_router: TaskRouterConfig = field(default_factory=TaskRouterConfig)
    layout_router: LayoutRouterConfig = field(default_factory=LayoutRouterConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    @model_validator(mode="after")
    def _heads_divide_d_model(self) -> ModelConfig:
        # Fusion, layout router and experts all attend at width d_model.
        for name in ("fusion", "layout_router", "moe"):
            _divides(self.d_model, "d_model", getattr(self, name).heads, f"{name}.heads")
        return self


@dataclass(config=_SECTION)
class LossConfig:
    """The seed's ``training.loss`` block, exactly these keys."""

    lambda_enc: NonNegFloat = 0.3
    lambda_dec: NonNegFloat = 1.0
    lambda_align: NonNegFloat = 1.0
    lambda_contrastive: NonNegFloat = 0.2
    lambda_task: NonNegFloat = 0.5
    lambda_layout: NonNegFloat = 0.4
    lambda_consistency: NonNegFloat = 0.3
    lambda_load: NonNegFloat = 0.01
    temperature: PositiveFloat = 0.07


@dataclass(config=_SECTION)
class TrainingConfig:
    loss: LossConfig = field(default_factory=LossConfig)
    roi_mask_weight: NonNegFloat = 1.0
    seed: NonNegInt = 0
    batch_size: Count = 32
    grad_accum_steps: Count = 1
    lr: PositiveFloat = 3e-4
    weight_decay: NonNegFloat = 0.01
    warmup_steps: NonNegInt = 500
    max_steps: Count = 20000
    epochs: Count = 100
    grad_clip: NonNegFloat = 1.0  # 0: no clipping
    mixed_precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    compile: AutoBool = "auto"  # train/perf.py decides auto
    channels_last: AutoBool = "auto"
    num_workers: AutoCount = "auto"  # auto: from the cores and the data path (train/data.py)
    data_cache: Bool = True  # the preprocessed shard cache beside the data set (data/cache.py)
    log_every: Count = 20
    eval_every: Count = 1000
    save_every: Count = 1000
    keep_last: Count = 3
    max_nonfinite: NonNegInt = 10


@dataclass(config=_SECTION)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


# ---------------------------------------------------------------------------- validation

_CONFIG = TypeAdapter(Config)
_MODEL = TypeAdapter(ModelConfig)

_EXPECTED = {
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dataclass_type": "expected a mapping of keys to values",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _where(loc: tuple[Any, ...], root: str) -> str:
    text = root
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.removeprefix(".") or "config"


def _section_keys(cls: type, loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` (a path of field names from ``cls``) accepts."""
    for name in loc:
        cls = {f.name: f.default_factory for f in dataclasses.fields(cls)}[name]  # sections default to their class
    return [f.name for f in dataclasses.fields(cls)]


def _message(error: dict[str, Any], cls: type, root: str) -> str:
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    got = f"got {value!r}" if not isinstance(value, (dict, list)) else f"got a {type(value).__name__}"
    if kind == "unexpected_keyword_argument":
        parent = loc[:-1]
        return f"{_where(parent, root)}: unknown key {loc[-1]!r}; known keys: {', '.join(_section_keys(cls, parent))}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        return f"{_where(loc, root)}: expected one of {', '.join(allowed)}, {got}"
    if kind in _BOUNDS:
        bound = next(iter(error["ctx"].values()))
        bound = int(bound) if float(bound).is_integer() else bound  # "must be > 0", not "> 0.0"
        return f"{_where(loc, root)}: must be {_BOUNDS[kind]} {bound}, {got}"
    if kind == "value_error":  # a model_validator's message names the key inside its section
        return f"{_where(loc, root)}.{error['ctx']['error']}".removeprefix(".")
    if kind == "float_type" and isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value):
        return f"{_where(loc, root)}: expected a number, {got} (YAML reads {value} as text: write it with a dot, e.g. 3.0e-4)"
    if kind in _EXPECTED:
        return f"{_where(loc, root)}: {_EXPECTED[kind]}, {got}"
    return f"{_where(loc, root)}: {error['msg']}, {got}"


def _validate(adapter: TypeAdapter, cls: type, data: Any, root: str) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as err:
        raise ConfigError("; ".join(_message(e, cls, root) for e in err.errors())) from None


def parse_config(data: dict | Config) -> Config:
    """The typed view of a config dict (validated)."""
    if isinstance(data, Config):
        return data
    return _validate(_CONFIG, Config, {} if data is None else data, "")


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def resolve_config(path_or_name: str | Path) -> Path:
    """A config file: ``path_or_name`` itself when it is a file, else the shipped config of that name."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise ConfigError(f"no config file {str(path_or_name)!r}; give a YAML file or a shipped name: {', '.join(SHIPPED_CONFIGS)}")


def load_config(path: str | Path) -> dict:
    """Read a YAML config (a path, or a shipped name such as ``"tiny"``), validate it, and return
    it as a dict with every default filled in."""
    path = resolve_config(path)
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    try:
        return config_to_dict(parse_config(data))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def model_config(config: dict | Config | ModelConfig) -> ModelConfig:
    """The model section of a config dict (or a typed config) as a ``ModelConfig``."""
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, Config):
        return config.model
    if "model" in config:
        return _validate(_MODEL, ModelConfig, config["model"], "model")
    return _validate(_MODEL, ModelConfig, config, "model")


SHIPPED_CONFIGS: tuple[str, ...] = tuple(sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml")))

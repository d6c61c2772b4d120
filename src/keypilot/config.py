"""YAML configs -> typed dataclasses. Unknown or misspelled keys are errors that name them.

A config file has two sections, ``model`` and ``training``. ``load_config(path)`` returns the
validated YAML as a plain dict (what ``KeyPilotModel.from_config`` and
``KeyPilotLoss(**config['training']['loss'])`` take); ``parse_config`` gives the typed view.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the key."""


@dataclass
class BackboneConfig:
    width_multiplier: float = 0.75
    stage_channels: list[int] = field(default_factory=lambda: [16, 24, 48, 64, 320])
    transformer_dims: list[int] = field(default_factory=lambda: [64, 80, 96])
    transformer_depths: list[int] = field(default_factory=lambda: [2, 4, 3])
    dense_channels: int = 192
    # The previous design when absent (so runs saved before these keys load unchanged);
    # configs/keypilot.yaml and tiny.yaml set the current one (docs/architecture.md).
    attention: str = "softmax"  # softmax | linear
    activation: str = "silu"  # silu | relu


@dataclass
class TextEncoderConfig:
    hidden: int = 312
    layers: int = 2
    heads: int = 12
    ffn: int = 1248
    dropout: float = 0.1


@dataclass
class PersonalityConfig:
    num_users: int = 4096
    dim: int = 64


@dataclass
class FusionConfig:
    heads: int = 8
    ffn: int = 1024
    layers: int = 1
    dropout: float = 0.1


@dataclass
class TaskRouterConfig:
    hidden: int = 128
    mix_threshold: float = 0.7


@dataclass
class LayoutRouterConfig:
    layers: int = 2
    heads: int = 8
    ffn: int = 1024
    hysteresis_bias: float = 0.3
    switch_threshold: float = 0.8


@dataclass
class MoEConfig:
    router_hidden: int = 128
    router_dropout: float = 0.1
    heads: int = 8
    ffn: int = 1024
    hint_bias: float = 0.4
    top1_threshold: float = 0.7


@dataclass
class DecoderConfig:
    beam_width: int = 4
    num_candidates: int = 5


@dataclass
class ModelConfig:
    vocab_size: int = 32000
    d_model: int = 256
    image_height: int = 512
    image_width: int = 256
    roi_size: int = 112
    roi_tokens: str = "crops"  # crops | pooled (see BackboneConfig.attention)
    max_context_tokens: int = 64
    max_target_tokens: int = 5
    pretrained: bool = False
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    personality: PersonalityConfig = field(default_factory=PersonalityConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    task_router: TaskRouterConfig = field(default_factory=TaskRouterConfig)
    layout_router: LayoutRouterConfig = field(default_factory=LayoutRouterConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)


@dataclass
class LossConfig:
    """The seed's ``training.loss`` block, exactly these keys."""

    lambda_enc: float = 0.3
    lambda_dec: float = 1.0
    lambda_align: float = 1.0
    lambda_contrastive: float = 0.2
    lambda_task: float = 0.5
    lambda_layout: float = 0.4
    lambda_consistency: float = 0.3
    lambda_load: float = 0.01
    temperature: float = 0.07


@dataclass
class TrainingConfig:
    loss: LossConfig = field(default_factory=LossConfig)
    roi_mask_weight: float = 1.0
    seed: int = 0
    batch_size: int = 32
    grad_accum_steps: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 20000
    epochs: int = 100
    grad_clip: float = 1.0
    mixed_precision: str = "auto"
    compile: bool = False
    num_workers: int = 2
    log_every: int = 20
    eval_every: int = 1000
    save_every: int = 1000
    keep_last: int = 3
    max_nonfinite: int = 10


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def parse_config(data: dict | Config) -> Config:
    """The typed view of a config dict (validated)."""
    if isinstance(data, Config):
        return data
    return _build(Config, data, "config")


def load_config(path: str | Path) -> dict:
    """Read a YAML config, validate it, and return it as a dict with every default filled in."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    try:
        return config_to_dict(parse_config(data))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def model_config(config: dict | Config | ModelConfig) -> ModelConfig:
    """The model section of a config dict (or a typed config) as a ``ModelConfig``."""
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, Config):
        return config.model
    if "model" in config:
        return _build(ModelConfig, config["model"], "config.model")
    return _build(ModelConfig, config, "config.model")

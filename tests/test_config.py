"""Configs: the shipped files load, the loss block has exactly the seed's keys, mistakes are named."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from conftest import ROOT

from keypilot.config import (
    SHIPPED_CONFIGS,
    SHIPPED_DIR,
    ConfigError,
    config_to_dict,
    load_config,
    model_config,
    parse_config,
)

SEED_LOSS_KEYS = {
    "lambda_enc", "lambda_dec", "lambda_align", "lambda_contrastive", "lambda_task",
    "lambda_layout", "lambda_consistency", "lambda_load", "temperature",
}


@pytest.mark.parametrize("path", ["configs/keypilot.yaml", "configs/tiny.yaml"])
def test_shipped_configs_load(path):
    config = load_config(path)
    assert set(config["training"]["loss"]) == SEED_LOSS_KEYS
    assert config["model"]["pretrained"] is False


def test_reference_config_has_the_spec_dimensions():
    m = model_config(load_config("configs/keypilot.yaml"))
    assert (m.d_model, m.vocab_size, m.image_height, m.image_width, m.roi_size) == (256, 32000, 512, 256, 112)
    assert m.backbone.width_multiplier == 0.75 and m.backbone.dense_channels == 192
    assert (m.text_encoder.hidden, m.text_encoder.layers, m.text_encoder.heads, m.text_encoder.ffn) == (312, 2, 12, 1248)
    assert m.max_context_tokens == 64 and m.max_target_tokens == 5
    assert m.personality.dim == 64
    assert (m.fusion.heads, m.fusion.ffn, m.fusion.layers) == (8, 1024, 1)
    assert m.task_router.hidden == 128 and m.task_router.mix_threshold == 0.7
    assert (m.layout_router.layers, m.layout_router.hysteresis_bias, m.layout_router.switch_threshold) == (2, 0.3, 0.8)
    assert (m.moe.router_hidden, m.moe.hint_bias, m.moe.top1_threshold) == (128, 0.4, 0.7)
    loss = load_config("configs/keypilot.yaml")["training"]["loss"]
    assert loss == dict(lambda_enc=0.3, lambda_dec=1.0, lambda_align=1.0, lambda_contrastive=0.2, lambda_task=0.5,
                        lambda_layout=0.4, lambda_consistency=0.3, lambda_load=0.01, temperature=0.07)


def _write(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_misspelled_key_is_named(tmp_path):
    data = yaml.safe_load(open("configs/tiny.yaml"))
    data["training"]["loss"]["lamda_task"] = data["training"]["loss"].pop("lambda_task")
    with pytest.raises(ConfigError, match=r"c\.yaml: training\.loss: unknown key 'lamda_task'; known keys: lambda_enc, "):
        load_config(_write(tmp_path, data))


def test_unknown_nested_key_is_named(tmp_path):
    data = yaml.safe_load(open("configs/tiny.yaml"))
    data["model"]["backbone"]["depth"] = 3
    with pytest.raises(ConfigError, match=r"model\.backbone: unknown key 'depth'"):
        load_config(_write(tmp_path, data))
    with pytest.raises(ConfigError, match=r"^config: unknown key 'models'; known keys: model, training$"):
        parse_config({"models": {}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": {"d_model": "256"}}, "model.d_model: expected an integer, got '256'"),
        ({"model": {"d_model": 64.0}}, "model.d_model: expected an integer, got 64.0"),
        ({"model": {"vocab_size": True}}, "model.vocab_size: expected an integer, got True"),
        ({"training": {"compile": 1}}, "training.compile: expected auto, true or false, got 1"),
        ({"training": {"channels_last": "yes"}}, "training.channels_last: expected auto, true or false, got 'yes'"),
        ({"training": {"num_workers": "many"}}, "training.num_workers: expected auto or a count >= 0, got 'many'"),
        ({"training": {"num_workers": -1}}, "training.num_workers: expected auto or a count >= 0, got -1"),
        ({"training": {"mixed_precision": "fp8"}}, "training.mixed_precision: expected one of auto, bf16, fp16, fp32, got 'fp8'"),
        ({"training": {"batch_size": -4}}, "training.batch_size: must be >= 1, got -4"),
        ({"training": {"lr": 0}}, "training.lr: must be > 0, got 0"),
        ({"training": {"lr": float("nan")}}, "training.lr: expected a finite number, got nan"),
        ({"training": {"lr": "3e-4"}}, "training.lr: expected a number, got '3e-4' (YAML reads 3e-4 as text"),
        ({"training": {"loss": {"temperature": 0.0}}}, "training.loss.temperature: must be > 0, got 0.0"),
        ({"training": {"loss": {"lambda_dec": -1}}}, "training.loss.lambda_dec: must be >= 0, got -1"),
        ({"model": {"fusion": {"dropout": 1.0}}}, "model.fusion.dropout: must be < 1, got 1.0"),
        ({"model": {"layout_router": {"switch_threshold": 1.5}}}, "model.layout_router.switch_threshold: must be <= 1, got 1.5"),
        ({"model": {"backbone": {"stage_channels": [16, 0]}}}, "model.backbone.stage_channels[1]: must be >= 1, got 0"),
        ({"model": {"backbone": {"transformer_dims": 64}}}, "model.backbone.transformer_dims: expected a list, got 64"),
        ({"model": {"text_encoder": {"heads": 5}}}, "model.text_encoder.heads: 5 attention heads do not divide hidden = 312"),
        ({"model": {"d_model": 66}}, "model.fusion.heads: 8 attention heads do not divide d_model = 66"),
        ({"training": 3}, "training: expected a mapping of keys to values, got 3"),
        ([1, 2], "config: expected a mapping of keys to values, got a list"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_values_are_named_with_what_is_allowed(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(message)


def test_every_mistake_is_listed_and_the_file_named(tmp_path):
    path = _write(tmp_path, {"training": {"batch_size": 0, "mixed_precision": "fp8"}})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}: training.batch_size: must be >= 1, got 0; "
                                 "training.mixed_precision: expected one of auto, bf16, fp16, fp32, got 'fp8'")


def test_broken_yaml_is_named_with_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  d_model: 64\n training: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml:3: not valid YAML"):
        load_config(path)


def test_missing_keys_take_defaults():
    config = parse_config({"model": {"d_model": 64}})
    assert config.model.d_model == 64 and config.model.vocab_size == 32000
    assert config.training.loss.temperature == 0.07
    assert parse_config(None).training.batch_size == 32  # an empty YAML file
    lr = parse_config({"training": {"lr": 1}}).training.lr  # YAML `lr: 1` is a float
    assert lr == 1.0 and isinstance(lr, float)


def test_load_config_returns_plain_dicts_that_parse_again():
    config = load_config("configs/tiny.yaml")
    assert type(config) is dict and type(config["model"]["backbone"]) is dict and type(config["training"]["loss"]) is dict
    assert config_to_dict(parse_config(config)) == config
    assert dataclasses.replace(parse_config(config).training, batch_size=3).batch_size == 3


def test_shipped_configs_are_found_by_name_from_any_directory(tmp_path, monkeypatch):
    expected = load_config("configs/tiny.yaml")
    monkeypatch.chdir(tmp_path)
    assert set(SHIPPED_CONFIGS) >= {"tiny", "keypilot"}
    assert load_config("tiny") == expected and load_config("tiny.yaml") == expected
    assert load_config("keypilot")["model"]["d_model"] == 256
    with pytest.raises(ConfigError, match=r"no config file 'tinyy'; give a YAML file or a shipped name: keypilot, keypilot-v1, tiny, tiny-v1"):
        load_config("tinyy")
    with pytest.raises(ConfigError, match="no config file 'configs/tiny.yaml'"):
        load_config("configs/tiny.yaml")  # a path is a path: not found from here


def test_configs_folder_of_the_checkout_is_the_package_data():
    """configs/ at the top of the checkout is a link to the shipped files, not a copy."""
    top = ROOT / "configs"
    assert top.is_symlink() and top.resolve() == SHIPPED_DIR.resolve()

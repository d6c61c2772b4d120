"""Configs: the shipped files load, the loss block has exactly the seed's keys, mistakes are named."""

from __future__ import annotations

import pytest
import yaml

from keypilot.config import ConfigError, load_config, model_config, parse_config

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
    with pytest.raises(ConfigError, match=r"config\.training\.loss: unknown key\(s\) 'lamda_task'"):
        load_config(_write(tmp_path, data))


def test_unknown_nested_key_is_named(tmp_path):
    data = yaml.safe_load(open("configs/tiny.yaml"))
    data["model"]["backbone"]["depth"] = 3
    with pytest.raises(ConfigError, match=r"model\.backbone: unknown key\(s\) 'depth'"):
        load_config(_write(tmp_path, data))


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"config\.model\.d_model: expected an integer"):
        parse_config({"model": {"d_model": "256"}})
    with pytest.raises(ConfigError, match=r"config\.training\.compile: expected auto, true or false"):
        parse_config({"training": {"compile": 1}})
    with pytest.raises(ConfigError, match=r"config\.training\.num_workers: expected auto or a count"):
        parse_config({"training": {"num_workers": "many"}})


def test_missing_keys_take_defaults():
    config = parse_config({"model": {"d_model": 64}})
    assert config.model.d_model == 64 and config.model.vocab_size == 32000
    assert config.training.loss.temperature == 0.07

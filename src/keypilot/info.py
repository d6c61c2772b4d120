"""``keypilot info``: parameters per component and model size, beside the reference design's figures."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from keypilot.config import load_config

MB = 1e6  # sizes in MB of 10^6 bytes: FP32 = 4 bytes per parameter, INT8 = 1 byte per parameter


def _params(items: tuple[nn.Module | nn.Parameter, ...]) -> list[nn.Parameter]:
    return [p for item in items for p in ([item] if isinstance(item, nn.Parameter) else item.parameters())]


def count(*modules: nn.Module | nn.Parameter, exclude: tuple[nn.Module | nn.Parameter, ...] = ()) -> int:
    """Parameters of modules/parameters, each shared tensor counted once, those of ``exclude`` not at all."""
    skip = {id(p) for p in _params(exclude)}
    return sum({id(p): p.numel() for p in _params(modules) if id(p) not in skip}.values())


def component_counts(model: nn.Module) -> list[tuple[str, int, str]]:
    """(component, parameters, reference figure) rows for a ``KeyPilotModel``."""
    enc, dec = model.encoder, model.decoder
    moe = dec.moe
    # A text encoder that reads the decoder's table (text_encoder.shared_embedding): counted with the decoder.
    shared = enc.text_encoder.token_emb is dec.token_emb
    decoders = (dec.token_emb,) if shared else ()
    return [
        ("encoder", count(enc, exclude=decoders), "~13.8M params, 5.8 MB INT8"),
        ("  backbone (MobileViT, shared with ROI crops)", count(enc.backbone), ""),
        ("  global head [IMG]", count(enc.global_head), ""),
        ("  SAM-Lite (prompts, masks, ROI projections)", count(enc.sam_lite), ""),
        ("  text encoder", count(enc.text_encoder, exclude=decoders), ""),
        ("    of which token embedding", count(enc.text_encoder.token_emb, exclude=decoders),
         "the decoder's (shared)" if shared else "dominates the encoder"),
        ("  personality", count(enc.personality), ""),
        ("  Cross-Former fusion", count(enc.fusion), ""),
        ("decoder", count(model.task_router, model.layout_router, dec), ""),
        ("  task router + codebook", count(model.task_router), ""),
        ("  layout router + codebook", count(model.layout_router), ""),
        ("  MoE router + layout hint", count(moe.router, moe.hint), ""),
        ("  experts (5)", count(moe.experts), "~2.4M"),
        ("  token embedding = output head (tied) + bias", count(dec.token_emb, dec.head_bias), ""),
        ("  positions + final norm", count(dec.pos_emb, dec.norm), ""),
        ("total", count(model), "< 50 MB INT8"),
    ]


def print_model_info(config_path: str | Path) -> None:
    """Print parameters and FP32/INT8 size per component of the model a config describes."""
    from keypilot.models.keypilot_model import KeyPilotModel

    config = load_config(config_path)
    model = KeyPilotModel.from_config(config)
    rows = component_counts(model)
    width = max(len(name) for name, _, _ in rows)
    print(f"KeyPilot model from {config_path}")
    print(f"{'component':<{width}}  {'params':>12}  {'FP32 MB':>8}  {'INT8 MB':>8}  reference")
    for name, n, reference in rows:
        print(f"{name:<{width}}  {n:>12,}  {4 * n / MB:>8.2f}  {n / MB:>8.2f}  {reference}")
    print("INT8 assumes one byte per parameter (weights only; activations and runtime not counted).")

"""KeyPilot: a screen-aware smart keyboard model.

The public API. Names are resolved lazily so that ``import keypilot`` stays light and the
ONNX predictor's import path never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_config": "keypilot.config",
    "KeyPilotModel": "keypilot.models.keypilot_model",
    "KeyPilotLoss": "keypilot.models.keypilot_model",
    "KeyPilotTokenizer": "keypilot.tokenizer",
    "Predictor": "keypilot.inference.predictor",
    "OnnxPredictor": "keypilot.inference.onnx_predictor",
    "lang_of": "keypilot.labels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keypilot' has no attribute {name!r}")

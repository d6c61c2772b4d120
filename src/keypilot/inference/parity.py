"""How close the exported graphs are to PyTorch, and what INT8 costs in accuracy.

``parity_report`` feeds the same real screens and texts to the torch model and to the FP32
(and INT8) graphs and measures the outputs: max |difference| of the visual tokens, task,
layout and expert probabilities and the first-token logits of every task's conditioning;
top-5 token agreement; layout agreement. ``quantization_accuracy`` runs the FP32 and INT8
ONNX predictors over a test split and scores both with the evaluation's metrics.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from keypilot.inference.onnx_predictor import OnnxPredictor
from keypilot.preprocess import context_ids, letterbox_array, to_pil
from keypilot.labels import LAYOUT_INDEX, LAYOUTS, TASKS
from keypilot.models.keypilot_model import KeyPilotModel
from keypilot.prior_fusion import feature_row, propose

PARITY_SAMPLES = 8


def sample_records(source: Path, num: int, split: str = "test") -> list[Any]:
    """Up to ``num`` records of a data set folder (its ``split`` when large enough) or ``.jsonl``
    file, distinct screenshots first.

    ``source`` without any ``.jsonl`` (a run folder) gets a small generated data set instead.
    """
    from keypilot.data.format import jsonl_files, read_records

    source = Path(source)
    if source.is_dir() and not jsonl_files(source):
        source = _generated(num)
    records = read_records(source, skip_bad=True, check_images=False)
    if source.is_dir() and (source / f"{split}.jsonl").is_file():
        preferred = read_records(source / f"{split}.jsonl", skip_bad=True, check_images=False)
        records = preferred if len(preferred) >= num else records
    seen: set[Path] = set()
    distinct = [r for r in records if not (r.image in seen or seen.add(r.image))]
    rest = [r for r in records if r not in distinct]
    return (distinct + rest)[:num]


def _generated(num: int) -> Path:
    """A throwaway generated data set (the process keeps it until exit)."""
    from keypilot.data.generate import generate_dataset

    folder = Path(tempfile.mkdtemp(prefix="keypilot-screens-"))
    generate_dataset(folder, num=max(num, 10), seed=1234, workers=1, progress=False)
    return folder


def calibration_screens(source: Path, num: int, height: int, width: int) -> list[np.ndarray]:
    """``num`` real screenshots of ``source``, letterboxed exactly as the predictor does."""
    screens, seen = [], set()
    for record in sample_records(source, num, split="train"):
        if record.image not in seen:
            seen.add(record.image)
            screens.append(letterbox_array(to_pil(record.image), height, width))
    return screens


def _torch_outputs(model: KeyPilotModel, pixels: np.ndarray, ids: np.ndarray, prev: int, user: int,
                   features: np.ndarray) -> dict[str, np.ndarray]:
    """The torch reference of what the graphs compute, for one screen and text (and its prior features)."""
    with torch.inference_mode():
        screen = model.encode_screen(torch.from_numpy(pixels)[None])
        ids_t = torch.from_numpy(ids)[None]
        out = model.encode_keystroke(screen, ids_t, torch.ones_like(ids_t), torch.tensor([user]), torch.tensor([prev]),
                                     prior_features=torch.from_numpy(features)[None] if features.size else None)
        layout = out["layout_next"]
        onehot = F.one_hot(layout, len(LAYOUTS)).float()
        e_layout = onehot @ model.layout_router.codebook
        logits = []
        for task in range(len(TASKS)):
            e_task = model.task_router.codebook[task][None]
            _, g = model.decoder.moe.route(out["h_t"], e_task, e_layout, onehot)
            logits.append(model.decoder(out["h_t"], e_task, e_layout, g))
    return {
        "global_feat": screen["global_feat"].numpy(), "roi_feats": screen["roi_feats"].numpy(),
        "task_probs": out["task_probs"].numpy(), "layout_logits": out["layout_logits"].numpy(),
        "expert_probs": out["expert_probs"].numpy(), "layout": int(layout), "logits": torch.cat(logits).numpy(),
    }


def _onnx_outputs(predictor: OnnxPredictor, pixels: np.ndarray, ids: np.ndarray, prev: int, user: int,
                  features: np.ndarray) -> dict[str, np.ndarray]:
    global_feat, roi_feats = predictor.sessions["screen"].run(None, {"image": pixels[None]})
    feeds = {
        "global_feat": global_feat, "roi_feats": roi_feats, "token_emb": predictor.token_table.rows(ids[None]),
        "attention_mask": np.ones_like(ids)[None],
        "user_id": np.asarray([user]), "prev_layout": np.asarray([prev]), "layout_override": np.asarray([-1]),
    }  # fmt: skip
    if features.size:
        feeds["prior_features"] = features[None]
    task_probs, layout_logits, _, layout, expert_probs, prefix, weights = predictor.sessions["keystroke"].run(None, feeds)
    logits = []
    empty = np.zeros((1, 0, predictor.d_model), np.float32)
    for task in range(len(TASKS)):
        z = sum(w * predictor.sessions[f"expert_{name}"].run(None, {"prefix": prefix[task : task + 1], "prev_emb": empty})[0]
                for name, w in zip(predictor.manifest["labels"]["experts"], weights[task]) if w > 0)
        head = predictor.sessions["decode_head"].run(None, {"z": np.asarray(z, np.float32),
                                                            "token_bias": np.zeros((1, predictor.vocab_size), np.float32),
                                                            "beam_scores": np.zeros(1, np.float32)})
        logits.append(head[3])
    return {"global_feat": global_feat, "roi_feats": roi_feats, "task_probs": task_probs, "layout_logits": layout_logits,
            "expert_probs": expert_probs, "layout": int(layout[0]), "logits": np.concatenate(logits)}


def _top5_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of ``a``'s top-5 tokens that are in ``b``'s top-5, over rows."""
    top_a, top_b = np.argsort(-a, axis=-1)[:, :5], np.argsort(-b, axis=-1)[:, :5]
    return float(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(top_a, top_b)]))


def compare(model: KeyPilotModel, predictor: OnnxPredictor, records: Sequence[Any]) -> dict[str, float]:
    """Parity figures of one ONNX predictor against the torch model over ``records``."""
    mc = model.config["model"]
    diffs: dict[str, float] = {}
    top5, layouts = [], []
    for record in records:
        pixels = letterbox_array(to_pil(record.image), mc["image_height"], mc["image_width"])
        ids = context_ids(predictor.tokenizer, record.context, mc["max_context_tokens"])
        prev, user = LAYOUT_INDEX[record.prev_layout or "EN"], -1 if record.user_id is None else record.user_id
        features = feature_row(propose(predictor.priors, record.context), mc["prior_features"])
        ref = _torch_outputs(model, pixels, ids, prev, user, features)
        got = _onnx_outputs(predictor, pixels, ids, prev, user, features)
        for key in ("global_feat", "roi_feats", "task_probs", "layout_logits", "expert_probs", "logits"):
            diffs[key] = max(diffs.get(key, 0.0), float(np.abs(ref[key] - got[key]).max()))
        top5.append(_top5_agreement(ref["logits"], got["logits"]))
        layouts.append(ref["layout"] == got["layout"])
    return {**{f"max_abs_diff_{k}": v for k, v in diffs.items()}, "top5_agreement": float(np.mean(top5)),
            "layout_agreement": float(np.mean(layouts)), "samples": len(records)}


def parity_report(model: KeyPilotModel, export_dir: Path, data: Path, int8: bool, num: int = PARITY_SAMPLES) -> dict[str, Any]:
    """FP32 (and INT8) parity against ``model`` on ``num`` real screens and texts of ``data``."""
    records = sample_records(data, num)
    report = {"fp32": compare(model, OnnxPredictor.from_pretrained(export_dir), records)}
    if int8:
        report["int8"] = compare(model, OnnxPredictor.from_pretrained(export_dir, int8=True), records)
    return report


def print_parity(report: dict[str, Any]) -> None:
    for name, figures in report.items():
        print(f"parity {name} vs torch ({figures['samples']} screens + texts):")
        for key, value in figures.items():
            if key != "samples":
                print(f"  {key:32s} {value:.3g}")


def quantization_accuracy(export_dir: Path, data: Path, limit: int | None = None) -> dict[str, dict[str, Any]]:
    """Layout accuracy and top-1/top-5 of FP32 vs INT8 ONNX on a test split (the evaluation's metrics)."""
    from keypilot.data.format import read_records
    from keypilot.evaluation.evaluate import prediction_row
    from keypilot.evaluation.metrics import score_predictions

    data = Path(data)
    source = data / "test.jsonl" if data.is_dir() and (data / "test.jsonl").is_file() else data
    records = list(read_records(source, skip_bad=True, check_images=False))[:limit]
    out = {}
    for name, int8 in (("fp32", False), ("int8", True)):
        predictor = OnnxPredictor.from_pretrained(export_dir, int8=int8)
        predictions = [prediction_row(r.id, predictor.predict(r.image, r.context, prev_layout=r.prev_layout or "EN",
                                                              user_id=r.user_id)) for r in records]
        scores = score_predictions(records, predictions)
        out[name] = {"n": scores["n"], "layout_accuracy": scores.get("layout_accuracy"),
                     "top1": scores.get("candidates", {}).get("top1"), "top5": scores.get("candidates", {}).get("top5")}
    return out


def print_accuracy(scores: dict[str, dict[str, Any]]) -> None:
    """FP32 vs INT8 figures side by side, with the INT8 loss in points."""
    print(f"INT8 vs FP32 on {scores['fp32']['n']} test records:")
    for key in ("layout_accuracy", "top1", "top5"):
        fp32, int8 = scores["fp32"][key], scores["int8"][key]
        if fp32 is None or int8 is None:
            continue
        print(f"  {key:16s} fp32 {100 * fp32:6.2f}%   int8 {100 * int8:6.2f}%   change {100 * (int8 - fp32):+.2f} points")

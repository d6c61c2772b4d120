"""``keypilot evaluate``: score a trained run on any data set in the record format.

Reads the records with :func:`keypilot.data.format.read_records` (so a bad record stops the
run with its ``file:line: reason``), predicts them in batches, and writes

- ``predictions.jsonl``: one line per record (id, task, layout, layout_raw, corrections,
  completions, suggestion, shown);
- ``metrics.json`` and ``report.md`` with its PNG plots (:mod:`keypilot.evaluation.report`).

Nothing generator-specific is assumed: ``session``/``step``, ``rois`` and ``user_id`` are used
when present and skipped otherwise; records without ``screen_text`` are read by the
recogniser first (``keypilot.ocr``, when the ``ocr`` extra is installed), once per image. With ``baselines=True`` the model's text-only ablation
(the same run fed a black screenshot), the screen-text ablation (the records' ``screen_text``
ignored, when they have it) and the baselines of
:mod:`keypilot.evaluation.baselines` are scored on the same records; the n-gram and
suggestion baselines learn from the training split (``train_data``, by default the
``train.jsonl`` beside the evaluated file, when there is one).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from keypilot.evaluation import metrics as M
from keypilot.evaluation.baselines import default_baselines, fit_all
from keypilot.evaluation.report import MODEL, SCREEN_TEXT_OFF, TEXT_ONLY, write_report
from keypilot.evaluation.simulate import simulate

log = logging.getLogger(__name__)

PREDICTION_KEYS: tuple[str, ...] = ("task", "layout", "layout_raw", "corrections", "completions", "suggestion", "shown")


def find_train_split(data_file: Path) -> Path | None:
    """The training split next to an evaluated ``.jsonl`` file, if it is not that file itself."""
    folder = data_file if data_file.is_dir() else data_file.parent
    candidate = folder / "train.jsonl"
    if candidate.exists() and candidate.resolve() != data_file.resolve() and not data_file.is_dir():
        return candidate
    return None


def prediction_row(record_id: str, prediction: Any) -> dict[str, Any]:
    """The ``predictions.jsonl`` line of one model prediction (candidate texts only)."""
    return {
        "id": record_id,
        "task": prediction.task,
        "layout": prediction.layout,
        "layout_raw": prediction.layout_raw,
        "corrections": [c.text for c in prediction.corrections],
        "completions": [c.text for c in prediction.completions],
        "suggestion": prediction.suggestion.text if prediction.suggestion else None,
        "shown": list(prediction.shown),
    }


def chained_hysteresis(sessions: dict[str, list[int]], records: list[Any], layout_logits: np.ndarray,
                       hysteresis: Any) -> list[str]:
    """Layouts shown along each session when the keyboard feeds back its own previous layout.

    Records outside a session keep the per-record answer given their recorded
    ``prev_layout``. ``hysteresis(logits, prev_layout) -> layout`` is the predictor's rule.
    """
    shown = [hysteresis(layout_logits[i], record.prev_layout) for i, record in enumerate(records)]
    for indices in sessions.values():
        prev = records[indices[0]].prev_layout
        for i in indices:
            prev = shown[i] = hysteresis(layout_logits[i], prev)
    return shown


def model_metrics(predictor: Any, records: list[Any], batch_size: int, simulate_records: int) -> tuple[dict, list]:
    """Every model metric on ``records``; also the predictions (for ``predictions.jsonl``)."""
    batch = predictor.predict_batch(records, batch_size=batch_size)
    rows = [prediction_row(r.id, p) for r, p in zip(records, batch.predictions)]
    scores = M.score_predictions(records, rows)
    scores["retrieval"] = M.retrieval_recall(batch.global_feat, batch.text_feat)
    scores["expert_alignment"] = M.expert_alignment(batch.expert_probs, [M.target_lang(r) for r in records])
    sessions = M.group_sessions(records)
    raw = [row["layout_raw"] for row in rows]
    smoothed = chained_hysteresis(sessions, records, batch.layout_logits, predictor.hysteresis)
    scores["layout_switches"] = M.switch_summary(sessions, records, raw, smoothed)
    started = time.perf_counter()
    scores["keystrokes"] = simulate(predictor, records, max_records=simulate_records).to_dict()
    log.info("keystroke simulation: %.1f s", time.perf_counter() - started)
    scores["timing_ms"] = predictor.measure_latency(records[0].image, records[0].context)
    return scores, rows


def baseline_metrics(predictor: Any, records: list[Any], train_records: list[Any], batch_size: int) -> dict[str, Any]:
    """The text-only ablation and the baselines, each scored like the model."""
    blank = predictor.predict_batch(records, batch_size=batch_size, blank_screen=True)
    blank_rows = [prediction_row(r.id, p) for r, p in zip(records, blank.predictions)]
    results = {TEXT_ONLY: M.score_predictions(records, blank_rows)}
    pinyin = pinyin_records(predictor.priors, records)
    results[TEXT_ONLY]["pinyin"] = pinyin_score(records, blank_rows, pinyin)
    if any(r.screen_text for r in records):
        off = predictor.predict_batch(records, batch_size=batch_size, screen_text_off=True)
        off_rows = [prediction_row(r.id, p) for r, p in zip(records, off.predictions)]
        results[SCREEN_TEXT_OFF] = M.score_predictions(records, off_rows)
        results[SCREEN_TEXT_OFF]["pinyin"] = pinyin_score(records, off_rows, pinyin)
    baselines = default_baselines(predictor.priors)
    fit_all(baselines, train_records)
    for baseline in baselines:
        outputs = [asdict(baseline.predict(record)) for record in records]
        # A None field means "not predicted": drop it so that its metrics come out absent.
        rows = [{k: v for k, v in o.items() if v is not None} for o in outputs]
        results[baseline.name] = M.score_predictions(records, rows)
        results[baseline.name]["pinyin"] = pinyin_score(records, rows, pinyin)
    return results


def pinyin_records(priors: Any, records: list[Any]) -> list[int]:
    """Indices of the completions of an open pinyin buffer whose target is in the IME's dictionary
    (issue 10's measure of the pinyin IME: top-5 there should be >= 90%)."""
    if priors is None:
        return []
    return [i for i, r in enumerate(records) if r.task == "auto_completion" and priors.propose(r.context).pinyin_buffer
            and priors.in_ime_dictionary(r.target)]


def pinyin_score(records: list[Any], rows: list[dict[str, Any]], indices: list[int]) -> dict[str, Any] | None:
    """Completion top-1/top-5 on the ``pinyin_records`` subset (None when it is empty or not predicted)."""
    lists = [(records[i].target, rows[i].get("completions")) for i in indices]
    if not lists or any(candidates is None for _, candidates in lists):
        return None
    return {"n": len(lists), **{f"top{k}": sum(M.top_k_hit(c, t, k) for t, c in lists) / len(lists) for k in (1, 5)}}


def read_missing_screen_text(records: list[Any], reader: Any = None) -> int:
    """Fill ``screen_text`` of the records that lack it with the recogniser (``keypilot.ocr``),
    one reading per image, in memory only (``keypilot data ocr`` writes it into a data set).
    Returns the number of records filled; 0 with a log line when the ``ocr`` extra is missing."""
    missing = [r for r in records if r.screen_text is None]
    if not missing:
        return 0
    if reader is None:
        from keypilot.ocr.reader import OcrUnavailable, ScreenReader

        try:
            reader = ScreenReader()
        except OcrUnavailable as err:
            log.warning("%d records have no screen_text and cannot be read: %s", len(missing), err)
            return 0
    from keypilot.ocr.fill import read_screens

    started = time.perf_counter()
    read = read_screens(missing, reader, progress=False)
    for record in missing:
        record.screen_text = read[record.image]
    log.info("screen text read for %d records (%d screenshots) in %.1f s", len(missing), len(read),
             time.perf_counter() - started)
    return len(missing)


def evaluate(run_dir: str | Path, data_file: str | Path, out_dir: str | Path, baselines: bool = False,
             max_records: int | None = None, train_data: str | Path | None = None, batch_size: int = 16,
             simulate_records: int = 50, device: str = "cpu", recognise: bool = True) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` on ``data_file`` and write the report to ``out_dir``.

    ``recognise``: read the screen text of records without ``screen_text`` (``read_missing_screen_text``).
    Returns the metrics dict that is also written to ``metrics.json``.
    """
    from keypilot.data.format import read_records
    from keypilot.inference.predictor import Predictor

    run_dir, data_file, out_dir = Path(run_dir), Path(data_file), Path(out_dir)
    records = list(read_records(data_file))
    if max_records is not None:
        records = records[:max_records]
    if not records:
        raise ValueError(f"{data_file}: no records to evaluate")
    recognised = read_missing_screen_text(records) if recognise else 0
    predictor = Predictor.from_pretrained(run_dir, device=device)
    model, rows = model_metrics(predictor, records, batch_size, simulate_records)
    model["pinyin"] = pinyin_score(records, rows, pinyin_records(predictor.priors, records))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    result: dict[str, Any] = {"run": str(run_dir), "data": str(data_file), MODEL: model,
                              "screen_text_recognised": recognised}
    if baselines:
        train_path = Path(train_data) if train_data else find_train_split(data_file)
        train_records = list(read_records(train_path, skip_bad=True, check_images=False)) if train_path else []
        result["baselines"] = baseline_metrics(predictor, records, train_records, batch_size)
        result["baseline_notes"] = [
            f"n-gram and most-common-suggestion baselines fitted on {len(train_records)} training records"
            + (f" from `{train_path}`" if train_path else " (no train.jsonl found beside the data; "
               "the n-gram falls back to SymSpell's English word frequencies)"),
            "SymSpell corrects Latin words only; a Chinese, emoji or digit target counts as a miss.",
        ]
    write_report(result, out_dir)
    return result

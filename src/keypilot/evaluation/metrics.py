"""Metrics of the evaluation report, as plain functions over lists and arrays.

Nothing here imports torch or the model: the same functions score the model, its text-only
ablation and the baselines. A prediction is a dict with the keys of ``predictions.jsonl``
(``task, layout, layout_raw, corrections, completions, suggestion, shown``); a key that is
absent or ``None`` means "not predicted", and the metrics that need it come out ``None``.
Candidates are compared with the target after Unicode NFC normalisation and stripping
surrounding white space; case counts ("The" is not "the").
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keypilot.labels import LAYOUT_INDEX, LAYOUT_TO_EXPERT, LAYOUTS, TASKS, lang_of

# Which candidate list answers a record of each task.
TASK_CANDIDATES: dict[str, str] = {
    "error_correction": "corrections",
    "auto_completion": "completions",
    "suggestion": "suggestion",
}


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def accuracy(true: Sequence[Any], pred: Sequence[Any]) -> float | None:
    """Share of equal pairs; ``None`` for no pairs (an empty group has no accuracy)."""
    if not true:
        return None
    return sum(t == p for t, p in zip(true, pred, strict=True)) / len(true)


def confusion_matrix(true: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Counts ``matrix[i][j]`` of records with true label ``labels[i]`` predicted ``labels[j]``."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(true, pred, strict=True):
        matrix[index[t]][index[p]] += 1
    return matrix


def candidates_for(task: str, prediction: Mapping[str, Any]) -> list[str] | None:
    """The ranked candidates a prediction offers for a record of ``task`` (``None``: not predicted)."""
    value = prediction.get(TASK_CANDIDATES[task])
    if task == "suggestion":
        return None if "suggestion" not in prediction else ([value] if value else [])
    return value


def top_k_hit(candidates: Sequence[str], target: str, k: int) -> bool:
    goal = normalize(target)
    return any(normalize(c) == goal for c in candidates[:k])


def char_f1(pred: str, target: str) -> float:
    """Character-level F1 over the multisets of non-space characters (1.0 when both are empty)."""
    p = Counter(ch for ch in normalize(pred) if not ch.isspace())
    t = Counter(ch for ch in normalize(target) if not ch.isspace())
    if not p and not t:
        return 1.0
    overlap = sum((p & t).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(t.values())
    return 2 * precision * recall / (precision + recall)


def retrieval_recall(image_feats: np.ndarray, text_feats: np.ndarray, ks: Sequence[int] = (1, 5),
                     chunk: int = 100) -> dict[str, float]:
    """Image->text and text->image recall@k from cosine similarity.

    Row i of both arrays is one record. The gallery is a chunk of ``chunk`` consecutive
    records (as in the reference's retrieval over batches), so the figure does not fall just
    because the evaluated set is larger; a final chunk smaller than ``max(ks)`` is skipped
    unless it is the only one.
    """
    a = image_feats / np.maximum(np.linalg.norm(image_feats, axis=1, keepdims=True), 1e-12)
    b = text_feats / np.maximum(np.linalg.norm(text_feats, axis=1, keepdims=True), 1e-12)
    hits = {f"{d}_R@{k}": 0 for d in ("image_to_text", "text_to_image") for k in ks}
    counted = 0
    for start in range(0, len(a), chunk):
        sim = a[start : start + chunk] @ b[start : start + chunk].T
        n = len(sim)
        if n < max(ks) and start > 0:
            continue
        truth = np.diag(sim)[:, None]
        # Rank = number of gallery items scoring strictly higher than the true pair.
        rank_i2t = (sim > truth).sum(axis=1)
        rank_t2i = (sim.T > truth).sum(axis=1)
        for k in ks:
            hits[f"image_to_text_R@{k}"] += int((rank_i2t < k).sum())
            hits[f"text_to_image_R@{k}"] += int((rank_t2i < k).sum())
        counted += n
    return {key: value / counted for key, value in hits.items()} if counted else {}


def expert_alignment(expert_probs: np.ndarray, langs: Sequence[str]) -> float | None:
    """Share of records whose most probable expert (EXPERTS order) is the target language's."""
    if len(langs) == 0:
        return None
    wanted = np.array([LAYOUT_TO_EXPERT[LAYOUT_INDEX[lang]] for lang in langs])
    return float((np.asarray(expert_probs).argmax(axis=1) == wanted).mean())


def count_switches(layouts: Sequence[str], start: str | None = None) -> int:
    """Number of layout changes along a session; ``start`` is the layout shown before it."""
    sequence = ([start] if start is not None else []) + list(layouts)
    return sum(a != b for a, b in zip(sequence, sequence[1:]))


def group_sessions(records: Sequence[Any]) -> dict[str, list[int]]:
    """Record indices per ``session``, ordered by ``step``; records without a session are left out."""
    sessions: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if getattr(record, "session", None):
            sessions[record.session].append(i)
    for indices in sessions.values():
        indices.sort(key=lambda i: records[i].step if records[i].step is not None else 0)
    return dict(sessions)


def switch_summary(sessions: Mapping[str, list[int]], records: Sequence[Any], raw: Sequence[str],
                   smoothed: Sequence[str]) -> dict[str, Any]:
    """Layout switches per session without (``raw``) and with hysteresis (``smoothed``).

    ``raw[i]``/``smoothed[i]`` are the layouts shown at record i; each session starts from its
    first record's ``prev_layout``. ``accuracy_cost`` is raw accuracy minus smoothed accuracy
    on the session records (positive = hysteresis loses that much layout accuracy).
    """
    if not sessions:
        return {"sessions": 0}
    totals = Counter()
    for indices in sessions.values():
        start = records[indices[0]].prev_layout
        totals["raw"] += count_switches([raw[i] for i in indices], start)
        totals["smoothed"] += count_switches([smoothed[i] for i in indices], start)
        totals["needed"] += count_switches([records[i].layout for i in indices], start)
    members = [i for indices in sessions.values() for i in indices]
    truth = [records[i].layout for i in members]
    raw_acc = accuracy(truth, [raw[i] for i in members])
    smooth_acc = accuracy(truth, [smoothed[i] for i in members])
    n = len(sessions)
    return {
        "sessions": n,
        "switches_per_session_raw": totals["raw"] / n,
        "switches_per_session_hysteresis": totals["smoothed"] / n,
        "switches_per_session_needed": totals["needed"] / n,
        "switch_reduction": (1 - totals["smoothed"] / totals["raw"]) if totals["raw"] else None,
        "layout_accuracy_raw": raw_acc,
        "layout_accuracy_hysteresis": smooth_acc,
        "accuracy_cost": raw_acc - smooth_acc,
    }


def target_lang(record: Any) -> str:
    return getattr(record, "lang", None) or lang_of(record.target)


def score_predictions(records: Sequence[Any], predictions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Task, layout, candidate and suggestion metrics shared by the model and the baselines."""
    out: dict[str, Any] = {"n": len(records)}
    if predictions and predictions[0].get("task") is not None:
        truth, pred = [r.task for r in records], [p["task"] for p in predictions]
        out["task_accuracy"] = accuracy(truth, pred)
        out["task_confusion"] = {"labels": list(TASKS), "matrix": confusion_matrix(truth, pred, TASKS)}
    if predictions and predictions[0].get("layout") is not None:
        truth, pred = [r.layout for r in records], [p["layout"] for p in predictions]
        out["layout_accuracy"] = accuracy(truth, pred)
        out["layout_confusion"] = {"labels": list(LAYOUTS), "matrix": confusion_matrix(truth, pred, LAYOUTS)}
        if predictions[0].get("layout_raw") is not None:
            out["layout_raw_accuracy"] = accuracy(truth, [p["layout_raw"] for p in predictions])

    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    f1s: list[float] = []
    for record, prediction in zip(records, predictions, strict=True):
        candidates = candidates_for(record.task, prediction)
        if candidates is None:
            continue
        hits = {"top1": top_k_hit(candidates, record.target, 1), "top5": top_k_hit(candidates, record.target, 5)}
        for key in (f"task:{record.task}", f"lang:{target_lang(record)}", f"pair:{record.task}/{target_lang(record)}", "all"):
            for name, hit in hits.items():
                groups[key][name].append(hit)
        if record.task == "suggestion":
            f1s.append(char_f1(candidates[0] if candidates else "", record.target))
        if prediction.get("shown") is not None:
            groups["all"]["strip"].append(top_k_hit(prediction["shown"], record.target, 5))

    def summary(key: str) -> dict[str, Any]:
        group = groups[key]
        return {"n": len(group["top1"]), **{name: sum(v) / len(v) for name, v in group.items() if v}}

    out["per_task"] = {task: summary(f"task:{task}") for task in TASKS if groups[f"task:{task}"]["top1"]}
    out["per_language"] = {lang: summary(f"lang:{lang}") for lang in LAYOUTS if groups[f"lang:{lang}"]["top1"]}
    out["per_task_language"] = {f"{task}/{lang}": summary(f"pair:{task}/{lang}") for task in TASKS for lang in LAYOUTS
                                if groups[f"pair:{task}/{lang}"]["top1"]}
    if groups["all"]["top1"]:
        out["candidates"] = summary("all")
    if f1s:
        out["suggestion"] = {"n": len(f1s), "exact_match": out["per_task"]["suggestion"]["top1"],
                             "char_f1": sum(f1s) / len(f1s)}
    on_screen = on_screen_numbers(records, predictions)
    if on_screen:
        out["on_screen_num"] = on_screen
    out.update(grouped_scores(records, predictions))
    return out


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def printed_on_screen(record: Any) -> bool:
    """Is the record's numeric target printed on its screen (a code, amount or phone number in
    some line of ``screen_text``, spaces and dashes aside)?"""
    lines = getattr(record, "screen_text", None)
    target = _digits(record.target)
    return bool(lines) and len(target) >= 3 and any(target in _digits(line.text) for line in lines)


def on_screen_numbers(records: Sequence[Any], predictions: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Top-1 exact and top-5 for NUM completions and suggestions whose target is printed on the
    screen: what the screen-text channel is for (an OTP, an amount, a phone number)."""
    hits: list[tuple[bool, bool]] = []
    for record, prediction in zip(records, predictions):
        if record.task not in ("auto_completion", "suggestion") or target_lang(record) != "NUM":
            continue
        if not printed_on_screen(record):
            continue
        candidates = candidates_for(record.task, prediction)
        if candidates is None:
            return None
        hits.append((top_k_hit(candidates, record.target, 1), top_k_hit(candidates, record.target, 5)))
    if not hits:
        return None
    return {"n": len(hits), "top1": sum(h[0] for h in hits) / len(hits), "top5": sum(h[1] for h in hits) / len(hits)}


GROUP_FIELDS: tuple[str, ...] = ("renderer", "scenario")


def grouped_scores(records: Sequence[Any], predictions: Sequence[Mapping[str, Any]],
                   fields: Sequence[str] = GROUP_FIELDS) -> dict[str, dict[str, dict[str, Any]]]:
    """Task and layout accuracy and candidate top-1/top-5 per value of each record field in
    ``fields`` (the generator's ``renderer`` and ``scenario``): ``{"per_renderer": {"html": {...}}}``.

    A field is reported only when some records carry it; records without it form the group
    ``"unknown"``. Each group has ``n`` and whichever of ``task_accuracy``, ``layout_accuracy``,
    ``top1``, ``top5`` the predictions allow (as in :func:`score_predictions`).
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in fields:
        values = [getattr(record, name, None) for record in records]
        if not any(values):
            continue
        members: dict[str, list[int]] = defaultdict(list)
        for i, value in enumerate(values):
            members[value or "unknown"].append(i)
        table: dict[str, dict[str, Any]] = {}
        for value, indices in sorted(members.items()):
            group: dict[str, Any] = {"n": len(indices)}
            for key, label in (("task", "task_accuracy"), ("layout", "layout_accuracy")):
                if predictions and predictions[0].get(key) is not None:
                    group[label] = accuracy([getattr(records[i], key) for i in indices], [predictions[i][key] for i in indices])
            hits = [(top_k_hit(c, records[i].target, 1), top_k_hit(c, records[i].target, 5))
                    for i in indices if (c := candidates_for(records[i].task, predictions[i])) is not None]
            if hits:
                group["top1"] = sum(h[0] for h in hits) / len(hits)
                group["top5"] = sum(h[1] for h in hits) / len(hits)
            table[value] = group
        out[f"per_{name}"] = table
    return out

"""Write ``metrics.json``, the PNG plots and ``report.md`` from the evaluation's metrics dict."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402

from keypilot.labels import LAYOUTS, TASKS  # noqa: E402

# Columns of the side-by-side table: (header, path into a system's metrics).
TABLE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("task acc", ("task_accuracy",)),
    ("layout acc", ("layout_accuracy",)),
    ("correction top-1", ("per_task", "error_correction", "top1")),
    ("correction top-5", ("per_task", "error_correction", "top5")),
    ("completion top-1", ("per_task", "auto_completion", "top1")),
    ("completion top-5", ("per_task", "auto_completion", "top5")),
    ("suggestion exact", ("suggestion", "exact_match")),
    ("suggestion char-F1", ("suggestion", "char_f1")),
    ("candidates top-5 (all tasks)", ("candidates", "top5")),
    ("pinyin top-5 (in IME dict)", ("pinyin", "top5")),
    ("on-screen NUM top-1", ("on_screen_num", "top1")),
)
MODEL = "model"
TEXT_ONLY = "model, text only (blank screen)"
SCREEN_TEXT_OFF = "model, screen-text channel off"
PRIORS_ALONE = "priors alone"


def lookup(metrics: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def plot_confusion(matrix: list[list[int]], labels: list[str], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(labels), 1.0 + 0.8 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_accuracy_bars(groups: dict[str, dict[str, Any]], title: str, path: Path) -> None:
    names = list(groups)
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 3.2))
    width = 0.38
    for offset, key in ((-width / 2, "top1"), (width / 2, "top5")):
        ax.bar([i + offset for i in range(len(names))], [groups[n].get(key, 0.0) for n in names], width, label=key)
    ax.set_xticks(range(len(names)), [f"{n}\n(n={groups[n]['n']})" for n in names])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def screenshot_verdict(model: dict[str, Any], text_only: dict[str, Any]) -> str:
    """One honest sentence on the ablation: which metrics the screen moves, and by how much.

    A difference below one standard error of a proportion (sqrt(p(1-p)/n) at p = 0.5, i.e.
    0.5/sqrt(n)) is called noise, so a tiny evaluation set cannot claim an effect.
    """
    noise = 0.5 / math.sqrt(max(model.get("n", 1), 1))
    better, worse = [], []
    for header, path in TABLE_COLUMNS:
        a, b = lookup(model, path), lookup(text_only, path)
        if a is None or b is None or abs(a - b) <= noise:
            continue
        (better if a > b else worse).append(f"{header} {100 * (a - b):+.1f} pts")
    if better and not worse:
        head = "The screenshot helps"
    elif worse and not better:
        head = "The screenshot does not help; the blank-screen model is better"
    elif better:
        head = "The screenshot helps on some metrics and hurts on others"
    else:
        return (f"The screenshot makes no difference beyond noise (±{100 * noise:.1f} pts at "
                f"n={model.get('n')}) on any metric of the table.")
    return f"{head}: " + "; ".join(better + worse) + f" (noise level ±{100 * noise:.1f} pts)."


def network_verdict(model: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> list[str]:
    """Does the full model beat its priors alone and its blank-screen ablation on candidate top-5
    (all tasks)? Said plainly either way, with the margins."""
    mine = lookup(model, ("candidates", "top5"))
    parts = []
    for name in (PRIORS_ALONE, TEXT_ONLY, SCREEN_TEXT_OFF):
        other = lookup(baselines.get(name, {}), ("candidates", "top5"))
        if mine is None or other is None:
            continue
        verb = "beats" if mine > other else "does NOT beat"
        parts.append(f"{verb} {name} ({_fmt(mine)} vs {_fmt(other)}, {100 * (mine - other):+.1f} pts)")
    if not parts:
        return []
    return ["**Does the network add to its priors?** On candidate top-5 over all tasks the full model "
            + "; it ".join(parts) + ".", ""]


def _pair_table(systems: dict[str, dict[str, Any]]) -> list[str]:
    """Candidate top-5 per task and language of the target, every system side by side."""
    pairs = sorted({pair for metrics in systems.values() for pair in metrics.get("per_task_language", {})},
                   key=lambda pair: (TASKS.index(pair.split("/")[0]), LAYOUTS.index(pair.split("/")[1])))
    if not pairs:
        return []
    counts = next((m["per_task_language"] for m in systems.values() if m.get("per_task_language")), {})
    short = {"error_correction": "corr", "auto_completion": "comp", "suggestion": "sugg"}
    header = [f"{short[p.split('/')[0]]} {p.split('/')[1]} (n={counts.get(p, {}).get('n', '?')})" for p in pairs]
    lines = ["### Candidate top-5 per task and language, same records", "",
             "| system | " + " | ".join(header) + " |", "|---|" + "---|" * len(pairs)]
    for name, metrics in systems.items():
        groups = metrics.get("per_task_language", {})
        lines.append(f"| {name} | " + " | ".join(_fmt(groups.get(p, {}).get("top5")) for p in pairs) + " |")
    return lines + [""]


def _comparison_table(systems: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| system | " + " | ".join(h for h, _ in TABLE_COLUMNS) + " |",
             "|---|" + "---|" * len(TABLE_COLUMNS)]
    for name, metrics in systems.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(lookup(metrics, p)) for _, p in TABLE_COLUMNS) + " |")
    return lines


def group_section(model: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> list[str]:
    """Per renderer and per scenario (when the records carry them): the model's task and layout
    accuracy and candidate top-1/top-5, with the keep-previous-layout baseline's layout accuracy
    beside it when it was scored. A gap between renderers says how much of what the model learnt
    is the look of one renderer."""
    keep = next((b for name, b in baselines.items() if name.startswith("keep previous")), {})
    lines: list[str] = []
    for key, title in (("per_renderer", "Per renderer"), ("per_scenario", "Per scenario")):
        groups = model.get(key)
        if not groups:
            continue
        lines += [f"### {title}", "", "| group | n | task acc | layout acc | keep-previous layout | top-1 | top-5 |",
                  "|---|---|---|---|---|---|---|"]
        for name, group in groups.items():
            base = lookup(keep, (key, name, "layout_accuracy"))
            lines.append(f"| {name} | {group['n']} | {_fmt(group.get('task_accuracy'))} | {_fmt(group.get('layout_accuracy'))} | "
                         f"{_fmt(base)} | {_fmt(group.get('top1'))} | {_fmt(group.get('top5'))} |")
        lines.append("")
    return lines


def write_report(metrics: dict[str, Any], out_dir: Path) -> Path:
    """Write ``metrics.json``, the plots and ``report.md`` into ``out_dir``; return the report path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    model = metrics[MODEL]
    plots: list[tuple[str, str]] = []
    for key, labels, title in (("layout_confusion", LAYOUTS, "layout"), ("task_confusion", TASKS, "task")):
        if key in model:
            plot_confusion(model[key]["matrix"], list(labels), f"{title} confusion", out_dir / f"{title}_confusion.png")
            plots.append((f"{title} confusion", f"{title}_confusion.png"))
    for key, title in (("per_task", "per task"), ("per_language", "per language")):
        if model.get(key):
            name = f"accuracy_{key.split('_')[1]}.png"
            plot_accuracy_bars(model[key], f"candidate accuracy {title}", out_dir / name)
            plots.append((f"candidate accuracy {title}", name))

    lines = ["# KeyPilot evaluation", "", f"- run: `{metrics['run']}`", f"- data: `{metrics['data']}`",
             f"- records: {model['n']}"
             + (f" ({metrics['screen_text_recognised']} without `screen_text`: read by the recogniser)"
                if metrics.get("screen_text_recognised") else ""),
             f"- task accuracy {_fmt(model.get('task_accuracy'))}, layout accuracy {_fmt(model.get('layout_accuracy'))}, "
             f"candidate top-1 {_fmt(lookup(model, ('candidates', 'top1')))} / top-5 "
             f"{_fmt(lookup(model, ('candidates', 'top5')))}, keystrokes saved "
             f"{_fmt(lookup(model, ('keystrokes', 'keystroke_savings')))}"]
    if TEXT_ONLY in metrics.get("baselines", {}):
        lines.append("- " + screenshot_verdict(model, metrics["baselines"][TEXT_ONLY]))
    lines.append("")
    lines += ["## Model", "", "| metric | value |", "|---|---|"]
    for label, path in (("task accuracy", ("task_accuracy",)), ("layout accuracy (after hysteresis)", ("layout_accuracy",)),
                        ("layout accuracy (raw router)", ("layout_raw_accuracy",)),
                        ("candidate top-1 (task's own list)", ("candidates", "top1")),
                        ("candidate top-5", ("candidates", "top5")), ("target in shown strip", ("candidates", "strip")),
                        ("suggestion exact match", ("suggestion", "exact_match")),
                        ("suggestion char-F1", ("suggestion", "char_f1")),
                        ("NUM target printed on the screen: top-1", ("on_screen_num", "top1")),
                        ("language-expert alignment", ("expert_alignment",)),
                        ("image->text R@1", ("retrieval", "image_to_text_R@1")),
                        ("image->text R@5", ("retrieval", "image_to_text_R@5")),
                        ("text->image R@1", ("retrieval", "text_to_image_R@1")),
                        ("keystroke savings (simulated user)", ("keystrokes", "keystroke_savings"))):
        lines.append(f"| {label} | {_fmt(lookup(model, path))} |")
    timing = model.get("timing_ms", {})
    if timing:
        lines.append(f"| time per keystroke, cached screen (batch 1) | {timing.get('keystroke', 0):.1f} ms |")
        lines.append(f"| time per new screen (batch 1) | {timing.get('screen', 0):.1f} ms |")
    lines.append("")
    switches = model.get("layout_switches", {})
    if switches.get("sessions"):
        lines += ["### Layout switches per session", "",
                  f"{switches['sessions']} sessions. Switches per session: raw router "
                  f"{switches['switches_per_session_raw']:.2f}, with hysteresis "
                  f"{switches['switches_per_session_hysteresis']:.2f}, needed by the labels "
                  f"{switches['switches_per_session_needed']:.2f}. Hysteresis removes "
                  f"{_fmt(switches['switch_reduction'])} of the switches (reference: 68%); layout accuracy on "
                  f"these records goes from {_fmt(switches['layout_accuracy_raw'])} (raw) to "
                  f"{_fmt(switches['layout_accuracy_hysteresis'])} (hysteresis, fed its own previous layout).", ""]
    else:
        lines += ["No `session`/`step` fields in this data: layout switches per session not measured.", ""]
    keys = model.get("keystrokes")
    if keys:
        lines += ["### Simulated typing", "",
                  f"Over {keys['records']} records a simulated user needed {keys['model_keystrokes']} keys with the "
                  f"strip ({keys['candidate_taps']} of them candidate taps) against {keys['plain_keystrokes']} on a "
                  f"plain keyboard ({_fmt(keys['keystroke_savings'])} saved), and {keys['model_layout_taps']} layout-key "
                  f"taps against {keys['plain_layout_taps']}.", ""]
    for title, name in plots:
        lines += [f"![{title}]({name})", ""]
    if "per_language" in model:
        lines += ["### Per language of the target", "", "| language | n | top-1 | top-5 |", "|---|---|---|---|"]
        for lang, group in model["per_language"].items():
            lines.append(f"| {lang} | {group['n']} | {_fmt(group.get('top1'))} | {_fmt(group.get('top5'))} |")
        lines.append("")
    lines += group_section(model, metrics.get("baselines", {}))
    if "baselines" in metrics:
        systems = {MODEL: model, **metrics["baselines"]}
        lines += ["## Side by side, same records", ""] + _comparison_table(systems) + [""]
        if TEXT_ONLY in metrics["baselines"]:
            lines += ["**Does the screenshot help?** " + screenshot_verdict(model, metrics["baselines"][TEXT_ONLY]), ""]
        lines += network_verdict(model, metrics["baselines"])
        lines += _pair_table(systems)
        if metrics.get("baseline_notes"):
            lines += [f"- {note}" for note in metrics["baseline_notes"]] + [""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

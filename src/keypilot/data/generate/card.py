"""The dataset card's table: records per scenario x renderer, split by layout and by task,
with the screen-text coverage (share of records carrying ``screen_text``, mean lines per screen).

    python -m keypilot.data.generate.card DATA_DIR   # prints the Markdown table of docs/data.md

Reads the JSONL files only (no image is opened), so it runs in seconds on any data set whose
records carry ``scenario`` and ``renderer`` (others show as ``unknown``).
"""

from __future__ import annotations

import argparse
from collections import Counter

from keypilot.data.format import Record, read_records, screen_text_coverage
from keypilot.labels import LAYOUTS, TASKS

TASK_SHORT = {"error_correction": "corr.", "auto_completion": "compl.", "suggestion": "sugg."}


def card_table(path: str) -> str:
    records = read_records(path, check_images=False)
    rows = Counter((r.scenario or "unknown", r.renderer or "unknown") for r in records)
    layouts = Counter((r.scenario or "unknown", r.renderer or "unknown", r.layout) for r in records)
    tasks = Counter((r.scenario or "unknown", r.renderer or "unknown", r.task) for r in records)
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.scenario or "unknown", r.renderer or "unknown"), []).append(r)
    head = ["scenario", "renderer", "records", *LAYOUTS, *(TASK_SHORT[t] for t in TASKS), "text", "lines"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (scenario, renderer), n in sorted(rows.items()):
        cells = [scenario, renderer, str(n), *(str(layouts[scenario, renderer, lay]) for lay in LAYOUTS),
                 *(str(tasks[scenario, renderer, t]) for t in TASKS), *_text_cells(groups[scenario, renderer])]
        lines.append("| " + " | ".join(cells) + " |")
    total = [str(len(records)), *(str(sum(r.layout == lay for r in records)) for lay in LAYOUTS),
             *(str(sum(r.task == t for r in records)) for t in TASKS), *_text_cells(records)]
    lines.append("| **all** | | " + " | ".join(total) + " |")
    return "\n".join(lines)


def _text_cells(records: list[Record]) -> list[str]:
    """Share of records with ``screen_text`` and the mean lines per screen among them."""
    with_text, mean_lines = screen_text_coverage(records)
    return [f"{100 * with_text / max(1, len(records)):.0f}%", f"{mean_lines:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a data set folder or .jsonl file")
    print(card_table(parser.parse_args().path))


if __name__ == "__main__":
    main()

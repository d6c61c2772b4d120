"""Write a data set: render every step in a process pool, then the three JSONL splits."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import random
from pathlib import Path

from tqdm import tqdm

from keypilot.data.generate.chrome import Style
from keypilot.data.generate.corpus import load_corpus
from keypilot.data.generate.screen import render
from keypilot.data.generate.sessions import Step, composing_buffer, iter_steps
from keypilot.labels import lang_of


def render_step(step: Step) -> tuple[bytes, dict]:
    """The encoded screenshot and the JSON record of one step."""
    look_rng = random.Random(step.render_seed)
    style = Style.random(look_rng, step.user)
    m = step.moment
    rng = random.Random(f"{step.render_seed}-{step.step}")
    img, rois = render(step.screen, style, m.context, step.prev_layout if step.keyboard else None, m.candidates, composing_buffer(m), rng)
    buf = io.BytesIO()
    if step.image_ext == "png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=look_rng.randint(80, 94))
    record = {
        "id": step.id,
        "image": f"images/{step.id}.{step.image_ext}",
        "context": m.context,
        "task": m.task,
        "target": m.target,
        "layout": m.layout,
        "prev_layout": step.prev_layout,
        "lang": lang_of(m.target),
        "user_id": step.user.uid,
        "rois": rois,
        "action": m.action,
        "session": step.session,
        "step": step.step,
    }
    return buf.getvalue(), record


def _render_and_save(args: tuple[Step, str]) -> tuple[str, str]:
    step, out = args
    data, record = render_step(step)
    (Path(out) / record["image"]).write_bytes(data)
    return step.split, json.dumps(record, ensure_ascii=False)


def generate_dataset(out: Path, num: int, seed: int = 0, workers: int | None = None, progress: bool = True) -> dict[str, int]:
    """Write ``num`` samples to ``out`` (train/val/test.jsonl + images/); returns counts per split.

    The same ``seed`` gives the same bytes whatever ``workers`` is: every sample's randomness
    comes from (seed, session, step), and results are written in sample order.
    """
    if num <= 0:
        raise ValueError(f"--num must be positive, got {num}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    load_corpus()  # once in the parent, so forked workers share it
    workers = workers or os.cpu_count() or 1
    jobs = ((step, str(out)) for step in iter_steps(num, seed))
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    # disable=None: a bar on a terminal, nothing in a log file
    bar = tqdm(total=num, desc="generate", unit="sample", disable=None if progress else True)
    if workers == 1:
        results = map(_render_and_save, jobs)
        for split, line in results:
            lines[split].append(line)
            bar.update()
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers, initializer=load_corpus) as pool:
            for split, line in pool.imap(_render_and_save, jobs, chunksize=8):
                lines[split].append(line)
                bar.update()
    bar.close()
    for split, split_lines in lines.items():
        (out / f"{split}.jsonl").write_text("".join(line + "\n" for line in split_lines), encoding="utf-8")
    return {split: len(v) for split, v in lines.items()}

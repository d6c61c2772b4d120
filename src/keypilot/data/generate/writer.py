"""Write a data set: render every session in a process pool, then the three JSONL splits.

Two renderers draw the screens: Pillow (``screen.py``) and HTML/CSS in headless Chromium
(``html/``). ``renderer="mixed"`` deals each session to one of them (``HTML_SHARE`` of the
sessions to Chromium, by a draw of its own so the labels never depend on the renderer);
without Playwright or Chromium it falls back to Pillow and says so. Each worker process owns
one Chromium page for the whole run, loads a session's screen once and updates it per step.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from functools import lru_cache
from multiprocessing.util import Finalize
from pathlib import Path

from tqdm import tqdm

from keypilot.atomic import atomic_write_text
from keypilot.data.generate import augment, ocr_noise
from keypilot.data.generate.chrome import Style
from keypilot.data.generate.corpus import load_corpus
from keypilot.data.generate.screen import render
from keypilot.data.generate.sessions import Step, composing_buffer, iter_steps
from keypilot.data.generate.textlines import reading_order
from keypilot.labels import lang_of
from keypilot.screen_text import to_json

RENDERERS: tuple[str, ...] = ("mixed", "pil", "html")
HTML_SHARE = 0.42  # of the sessions, with renderer="mixed" (Chromium costs ~4x Pillow per screen)
_html_renderer = None  # this worker's HtmlRenderer, started on its first HTML session


def renderer_of(seed: int, session_index: int, mode: str) -> str:
    """Which renderer draws a session: fixed by (seed, session), apart from the label draws."""
    if mode != "mixed":
        return mode
    return "html" if random.Random(f"renderer-{seed}-{session_index}").random() < HTML_SHARE else "pil"


@lru_cache(maxsize=1)
def html_unavailable() -> str | None:
    """Why Chromium cannot render here, or ``None``: the package, the binary, and one real start."""
    from keypilot.data.generate.html.browser import CHROMIUM, CHROMIUM_ARGS, unavailable_reason

    reason = unavailable_reason()
    if reason:
        return reason
    try:  # a browser that is installed but cannot start (missing libraries, no /dev/shm) is unavailable too
        done = subprocess.run([CHROMIUM, *CHROMIUM_ARGS, "--dump-dom", "about:blank"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{CHROMIUM} does not start ({type(exc).__name__})"
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        return f"{CHROMIUM} does not start (exit {done.returncode}: {last[:160]})"
    return None


def _html():
    global _html_renderer
    if _html_renderer is None:
        from keypilot.data.generate.html import HtmlRenderer

        _html_renderer = HtmlRenderer()
        Finalize(_html_renderer, _html_renderer.close, exitpriority=10)  # close Chromium when the worker exits
    return _html_renderer


def _masked(step: Step) -> bool:
    sc = step.screen
    return 0 <= sc.focus < len(sc.fields) and sc.fields[sc.focus].kind == "password"


def render_step(step: Step, renderer: str = "pil", keyboard_any: bool = True) -> tuple[bytes, dict]:
    """The encoded screenshot and the JSON record of one step.

    ``keyboard_any``: whether any step of the session shows a keyboard (the HTML renderer lays
    out an iOS-style autofill chip only then).
    """
    m = step.moment
    keyboard = step.prev_layout if step.keyboard else None
    if renderer == "html":
        img, rois, text = _html().render(step.session, step.render_seed, step.screen, step.user, keyboard_any, m.context,
                                   keyboard, m.candidates, composing_buffer(m), _masked(step))
    else:
        style = Style.random(random.Random(step.render_seed), step.user)
        rng = random.Random(f"{step.render_seed}-{step.step}")
        img, rois, text = render(step.screen, style, m.context, keyboard, m.candidates, composing_buffer(m), rng)
    aug = augment.Augment.sample(random.Random(f"augment-{step.render_seed}"))
    img, rois, text = augment.apply(img, rois, aug, text)
    read = ocr_noise.read(reading_order(text), random.Random(f"ocr-{step.render_seed}-{step.step}"), img.size,
                          difficulty=_difficulty(aug, step.image_ext))
    buf = io.BytesIO()
    if step.image_ext == "png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=aug.jpeg_quality)
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
        "renderer": renderer,
        "scenario": step.scenario,
        "screen_text": to_json(read),
    }
    return buf.getvalue(), record


def _difficulty(aug: augment.Augment, image_ext: str) -> float:
    """How much harder than a clean screenshot this one is to read (scales ``ocr_noise``'s rates)."""
    return 1.0 + 0.5 * (aug.blur > 0) + 0.5 * (image_ext != "png" and aug.jpeg_quality < 50) + 0.5 * (aug.scale < 0.8)


def _render_session(args: tuple[list[Step], str, str]) -> tuple[list[tuple[str, str]], str, float]:
    steps, renderer, out = args
    started = time.perf_counter()
    keyboard_any = any(s.keyboard for s in steps)
    lines = []
    for step in steps:
        data, record = render_step(step, renderer, keyboard_any)
        (Path(out) / record["image"]).write_bytes(data)
        lines.append((step.split, json.dumps(record, ensure_ascii=False)))
    return lines, renderer, time.perf_counter() - started


def _sessions(num: int, seed: int, whole_sessions: bool) -> list[list[Step]]:
    sessions: list[list[Step]] = []
    for step in iter_steps(num, seed, whole_sessions):
        if not sessions or sessions[-1][0].session != step.session:
            sessions.append([])
        sessions[-1].append(step)
    return sessions


def generate_dataset(out: Path, num: int, seed: int = 0, workers: int | None = None, progress: bool = True,
                     renderer: str = "mixed", whole_sessions: bool = False) -> dict[str, int]:
    """Write ``num`` samples to ``out`` (train/val/test.jsonl + images/); returns counts per split.

    ``renderer``: ``mixed`` (default: ``HTML_SHARE`` of the sessions through Chromium, the rest
    through Pillow; all Pillow, said in one line, when Chromium is unavailable), ``pil`` or
    ``html`` (an error when Chromium is unavailable). Labels, ids and splits depend on ``seed``
    alone, whatever the renderer and ``workers``; the same seed and renderer give the same bytes
    with any ``workers`` (Chromium's pixels are stable for one Chromium build and font set).
    ``whole_sessions``: every keystroke state of each message (see ``iter_steps``), for
    evaluating layout stability on whole typing sessions.
    With ``progress``, a bar and a closing line with the time per renderer are printed.
    """
    if num <= 0:
        raise ValueError(f"--num must be positive, got {num}")
    if renderer not in RENDERERS:
        raise ValueError(f"--renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    if renderer != "pil":
        reason = html_unavailable()
        if reason and renderer == "html":
            raise RuntimeError(f"--renderer html: the HTML renderer is unavailable: {reason}")
        if reason:
            print(f"HTML renderer unavailable ({reason}): rendering every screen with Pillow", file=sys.stderr, flush=True)
            renderer = "pil"
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_corpus()  # once in the parent, so forked workers share it
    workers = workers or os.cpu_count() or 1
    jobs = [(steps, renderer_of(seed, int(steps[0].session.rsplit("-", 1)[1]), renderer), str(out)) for steps in _sessions(num, seed, whole_sessions)]
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    # disable=None: a bar on a terminal, nothing in a log file
    bar = tqdm(total=num, desc="generate", unit="sample", disable=None if progress else True)

    def collect(result: tuple[list[tuple[str, str]], str, float]) -> None:
        session_lines, used, spent = result
        for split, line in session_lines:
            lines[split].append(line)
        seconds[used] += spent
        counts[used] += len(session_lines)
        bar.update(len(session_lines))

    if workers == 1:
        for job in jobs:
            collect(_render_session(job))
        if _html_renderer is not None:
            _html_renderer.close()
            globals()["_html_renderer"] = None
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers, initializer=load_corpus) as pool:
            for result in pool.imap(_render_session, jobs, chunksize=2):
                collect(result)
            pool.close()
            pool.join()  # let the workers exit normally, so their Chromium pages are closed
    bar.close()
    for split, split_lines in lines.items():
        atomic_write_text(out / f"{split}.jsonl", "".join(line + "\n" for line in split_lines))
    if progress:
        wall = time.perf_counter() - started
        per = ", ".join(f"{name} {counts[name]} records in {seconds[name]:.1f} worker-s ({1000 * seconds[name] / counts[name]:.0f} ms each)"
                        for name in sorted(counts))
        print(f"generated {sum(counts.values())} records in {wall:.1f} s with {workers} worker(s): {per}", flush=True)
    return {split: len(v) for split, v in lines.items()}

"""OnnxPredictor: the torch Predictor's answers from the exported graphs, without torch.

Same interface and results as ``keypilot.inference.predictor.Predictor`` (``from_pretrained``,
``predict(image, text, prev_layout, user_id, layout)`` -> ``Prediction``), running on
onnxruntime with ``tokenizers``, Pillow and numpy only: nothing on this module's import path
imports torch (``tests/test_onnx_predictor.py`` checks it in a fresh interpreter).

A keystroke on an unchanged screenshot does not re-encode it: the visual tokens are kept in
an LRU (``ScreenCache``) keyed by a hash of the pixels or the caller's id for them. ``encoder_runs`` counts the screen graph's runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from keypilot.beam import beam_search
from keypilot.inference.postprocess import (
    Candidate,
    Prediction,
    candidate_beam_width,
    is_empty_field,
    keep_candidates,
    language_bias,
    lists_to_decode,
    strip_for,
)
from keypilot.inference.preprocess import (
    SCREEN_CACHE_SIZE,
    ImageInput,
    ScreenCache,
    context_ids,
    letterbox_array,
    to_pil,
)
from keypilot.labels import EXPERTS, LAYOUT_INDEX, LAYOUTS, TASKS
from keypilot.tokenizer import KeyPilotTokenizer

MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"


def make_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads, all graph optimizations, no spinning,
    no memory arena."""
    options = ort.SessionOptions()
    # The arena keeps the largest activations of every graph allocated for good; a keystroke
    # runs small graphs with shapes that change each time, where it saves no time (peak RSS
    # of the INT8 predictor -4 to -8 MB in docs/export.md's measurement).
    options.enable_cpu_mem_arena = False
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn a core between keystrokes for nothing on a phone-like budget.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class KeystrokeState:
    """What one keystroke's graph gives, batch 1, ready for decoding."""

    task_probs: np.ndarray  # [3]
    layout_logits: np.ndarray  # [5], before hysteresis
    layout_probs: np.ndarray  # [5], softmax of the raw logits
    layout: int  # the layout shown (hysteresis, or pinned)
    expert_probs: np.ndarray  # [5], EXPERTS order
    cond_prefix: np.ndarray  # [3 tasks, 3, d]: decoder prefix per forced task
    cond_weights: np.ndarray  # [3 tasks, 5]: active experts' weights per forced task


class OnnxPredictor:
    """An exported model (``keypilot export``) answering keystrokes with onnxruntime."""

    def __init__(self, export_dir: Path, threads: int = 1, int8: bool = False,
                 cache_size: int = SCREEN_CACHE_SIZE) -> None:
        self.export_dir = Path(export_dir)
        self.manifest: dict[str, Any] = json.loads((self.export_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        key = "int8_graphs" if int8 else "graphs"
        if key not in self.manifest:
            raise FileNotFoundError(f"{self.export_dir} has no INT8 graphs: export with --int8")
        graphs = self.manifest[key]
        self.sessions = {name: make_session(self.export_dir / spec["file"], threads) for name, spec in graphs.items()}
        self.tokenizer = KeyPilotTokenizer.from_file(self.export_dir / self.manifest["tokenizer"])
        mc = self.manifest["config"]["model"]
        self.height, self.width = mc["image_height"], mc["image_width"]
        self.max_context, self.max_target = mc["max_context_tokens"], mc["max_target_tokens"]
        self.beam_width, self.num_candidates = mc["decoder"]["beam_width"], mc["decoder"]["num_candidates"]
        self.candidate_width = candidate_beam_width(self.num_candidates)
        self.vocab_size, self.d_model = mc["vocab_size"], mc["d_model"]
        self.eos_id = int(self.manifest["eos_id"])
        self.masks = language_bias(self.tokenizer, self.vocab_size, self.eos_id)
        self._screens: ScreenCache[dict[str, np.ndarray]] = ScreenCache(cache_size)
        self.encoder_runs = 0

    @classmethod
    def from_pretrained(cls, export_dir: str | Path, threads: int = 1, int8: bool = False,
                        cache_size: int = SCREEN_CACHE_SIZE) -> OnnxPredictor:
        """Load an export folder (``manifest.json``, graphs, ``tokenizer.json``); ``int8`` picks the
        INT8 graphs; ``cache_size`` encoded screens are kept (least recently used goes first)."""
        return cls(Path(export_dir), threads=threads, int8=int8, cache_size=cache_size)

    # ------------------------------------------------------------------ stages

    def screen(self, image: ImageInput, screen_key: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """The visual tokens of a screenshot and whether they came from the cache (``ScreenCache.get``)."""
        return self._screens.get(image, lambda uncached: self.encode_screen(to_pil(uncached)), screen_key)

    def encode_screen(self, image: Image.Image) -> dict[str, np.ndarray]:
        """Letterbox and run the screen graph (no cache): ``global_feat [1, d]``, ``roi_feats [1, 4, d]``."""
        pixels = letterbox_array(image, self.height, self.width)[None]
        global_feat, roi_feats = self.sessions["screen"].run(None, {"image": pixels})
        self.encoder_runs += 1
        return {"global_feat": global_feat, "roi_feats": roi_feats}

    def clear_cache(self) -> None:
        self._screens.clear()

    def encode_keystroke(self, screen: dict[str, np.ndarray], text: str, prev_layout: str = "EN",
                         user_id: int | None = None, layout: str | None = None) -> KeystrokeState:
        """Run the keystroke graph on cached visual tokens."""
        ids = context_ids(self.tokenizer, text, self.max_context)[None]
        outputs = self.sessions["keystroke"].run(None, {
            **screen,
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "user_id": np.asarray([-1 if user_id is None else user_id], dtype=np.int64),
            "prev_layout": np.asarray([LAYOUT_INDEX[prev_layout]], dtype=np.int64),
            "layout_override": np.asarray([-1 if layout is None else LAYOUT_INDEX[layout]], dtype=np.int64),
        })  # fmt: skip
        task_probs, layout_logits, layout_probs, layout_used, expert_probs, prefix, weights = outputs
        return KeystrokeState(task_probs[0], layout_logits[0], layout_probs[0], int(layout_used[0]), expert_probs[0], prefix, weights)

    def decode(self, state: KeystrokeState, task: str, beam_width: int, count: int) -> list[Candidate]:
        """Beam-search candidates of ``task``'s conditioning in the shown layout's language."""
        row = TASKS.index(task)
        prefix, weights = state.cond_prefix[row : row + 1], state.cond_weights[row]
        active = [(EXPERTS[i], float(w)) for i, w in enumerate(weights) if w > 0]
        layout = LAYOUTS[state.layout]
        bias = self.masks[layout, "phrase" if task == "suggestion" else "word"][None]
        first_bias = self.masks[layout, "first"][None]
        embeddings: dict[tuple[int, ...], np.ndarray] = {(): np.zeros((0, self.d_model), np.float32)}

        def step(prev: list[list[int]], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            feeds = {"prefix": np.repeat(prefix, len(prev), axis=0), "prev_emb": np.stack([embeddings[tuple(p)] for p in prev])}
            z = sum(w * self.sessions[f"expert_{name}"].run(None, feeds)[0] for name, w in active)
            top_scores, top_index, top_emb, _ = self.sessions["decode_head"].run(
                None, {"z": z.astype(np.float32), "token_bias": first_bias if not prev[0] else bias, "beam_scores": scores})
            # The next step needs the embeddings of the chosen tokens; the head returns them.
            for value, index, emb in zip(top_scores, top_index, top_emb):
                if np.isfinite(value):
                    beam, token = divmod(int(index), self.vocab_size)
                    key = (*prev[beam], token)
                    embeddings[key] = np.concatenate([embeddings[tuple(prev[beam])], emb[None]])
            return top_scores, top_index

        hypotheses = beam_search(step, self.vocab_size, self.eos_id, beam_width, self.max_target, beam_width)
        return keep_candidates(hypotheses, self.tokenizer.decode_target, LAYOUTS[state.layout], count)

    # ------------------------------------------------------------------ prediction

    def predict(self, image: ImageInput, text: str, prev_layout: str = "EN", user_id: int | None = None,
                layout: str | None = None, full: bool = True, screen_key: str | None = None) -> Prediction:
        """Answer one keystroke, as ``Predictor.predict`` does. ``layout`` pins the layout;
        ``full=False`` decodes only the list the strip shows (the others come back empty);
        ``screen_key`` names the screenshot for the cache instead of a hash of its pixels."""
        started = time.perf_counter()
        screen, cached = self.screen(image, screen_key)
        screen_ms = 0.0 if cached else 1000 * (time.perf_counter() - started)
        keystroke_start = time.perf_counter()
        state = self.encode_keystroke(screen, text, prev_layout, user_id, layout)
        task = TASKS[int(np.argmax(state.task_probs))]
        empty = is_empty_field(text)
        suggestion = (self.decode(state, "suggestion", self.beam_width, 1) or [None])[0] if empty else None
        wants_correction, wants_completion = lists_to_decode(task, text, full, suggestion is not None)
        width = self.candidate_width
        corrections = self.decode(state, "error_correction", width, self.num_candidates) if wants_correction else []
        completions = self.decode(state, "auto_completion", width, self.num_candidates) if wants_completion else []
        shown, kind = strip_for(task, text, corrections, completions, suggestion)
        keystroke_ms = 1000 * (time.perf_counter() - keystroke_start)
        return Prediction(
            task=task,
            task_probs=dict(zip(TASKS, state.task_probs.tolist())),
            corrections=corrections,
            completions=completions,
            suggestion=suggestion,
            layout=LAYOUTS[state.layout],
            layout_raw=LAYOUTS[int(np.argmax(state.layout_logits))],
            layout_probs=dict(zip(LAYOUTS, state.layout_probs.tolist())),
            expert_probs=dict(zip(EXPERTS, state.expert_probs.tolist())),
            shown=shown,
            screen_cached=cached,
            timing_ms={"screen": round(screen_ms, 2), "keystroke": round(keystroke_ms, 2),
                       "total": round(1000 * (time.perf_counter() - started), 2)},
            shown_kind=kind,
        )

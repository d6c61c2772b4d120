"""OnnxPredictor: the torch Predictor's answers from the exported graphs, without torch.

Same interface and results as ``keypilot.inference.predictor.Predictor`` (``from_pretrained``,
``predict(image, text, prev_layout, user_id, layout)`` -> ``Prediction``), running on
onnxruntime, Pillow and numpy only (the tokenizer is ``keypilot.bpe``'s compact one; an export
made before it reads ``tokenizer.json`` with ``tokenizers``): nothing on this module's import
path imports torch (``tests/test_onnx_predictor.py`` checks it in a fresh interpreter). The graphs
supply the network's numbers; ranking the candidates is ``keypilot.inference.candidates``,
the code the torch predictor runs too.

A keystroke on an unchanged screenshot does not re-encode it: the visual tokens are kept in
an LRU (``ScreenCache``) keyed by a hash of the pixels or the caller's id for them; the
suggestion for an empty field is kept per screen as well. ``encoder_runs`` counts the screen
graph's runs.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from keypilot.beam import beam_search
from keypilot.bpe import load_tokenizer
from keypilot.inference.candidates import CandidateFusion, KeystrokeNet, answer, stage_times
from keypilot.inference.postprocess import Candidate, Prediction, is_empty_field, keep_candidates, language_bias
from keypilot.inference.privacy import is_private, withheld_prediction
from keypilot.inference.token_table import SharedTable, TokenTable, table_paths
from keypilot.preprocess import (
    SCREEN_CACHE_SIZE,
    ImageInput,
    ScreenCache,
    cache_key,
    context_ids,
    letterbox_array,
    to_pil,
)
from keypilot.labels import EXPERTS, LAYOUT_INDEX, LAYOUTS, TASKS
from keypilot.prior_fusion import feature_row, pinned_layout, propose
from keypilot.priors.screen import read_screen
from keypilot.screen_text import ScreenText
from keypilot.run_folder import MANIFEST_FILE


# Graphs whose weights are not prepacked: the decode head's vocabulary matrix is both the head's
# product and the look-up of the chosen tokens' rows, so a prepacked copy (8 MB INT8 at the
# reference size) would sit beside the mapped original that the look-up still reads.
UNPACKED_GRAPHS: tuple[str, ...] = ("decode_head",)


def make_session(path: Path, threads: int = 1, prepack: bool = True,
                 initializers: dict[str, ort.OrtValue] | None = None) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads, all graph optimizations, no spinning,
    no memory arena; ``prepack=False`` keeps the weights in the layout of the file;
    ``initializers``: weights the caller holds, used in place of the graph's own (not copied)."""
    options = ort.SessionOptions()
    for name, value in (initializers or {}).items():
        options.add_initializer(name, value)
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
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

    net: KeystrokeNet
    cond_prefix: np.ndarray  # [3 tasks, 3, d]: decoder prefix per forced task, layout shown
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
        # The text encoder's token embedding, looked up outside the keystroke graph (token_table.py):
        # the columns of the decode head's matrix when the model shares one table, else its own table
        # read from disk row by row. An export made before either has none: that graph takes ids.
        shared = graphs["keystroke"].get("token_table")
        self.token_table: TokenTable | SharedTable | None
        head_weights: dict[str, ort.OrtValue] = {}
        if shared:
            self.token_table = SharedTable(self.export_dir, shared)
            # The head reads the very mapping the look-ups read: the matrix is in memory once.
            head_weights[self.token_table.initializer] = ort.OrtValue.ortvalue_from_numpy(self.token_table.matrix)
        else:
            self.token_table = TokenTable.beside(self.export_dir / graphs["keystroke"]["file"])
        self.sessions = {name: make_session(self.export_dir / spec["file"], threads, prepack=name not in UNPACKED_GRAPHS,
                                            initializers=head_weights if name == "decode_head" else None)
                         for name, spec in graphs.items()}
        self._head_weights = head_weights  # onnxruntime wants them to outlive the session
        if self.token_table is None and "input_ids" not in graphs["keystroke"]["inputs"]:
            raise FileNotFoundError(f"{self.export_dir}: the keystroke graph's token table "
                                    f"({table_paths(graphs['keystroke']['file'])[0].name}) is missing: copy it with "
                                    "the graph or export again")
        self.tokenizer = load_tokenizer(self.export_dir, self.manifest)
        mc = self.manifest["config"]["model"]
        self.height, self.width = mc["image_height"], mc["image_width"]
        self.max_context, self.max_target = mc["max_context_tokens"], mc["max_target_tokens"]
        self.beam_width, self.num_candidates = mc["decoder"]["beam_width"], mc["decoder"]["num_candidates"]
        self.vocab_size, self.d_model = mc["vocab_size"], mc["d_model"]
        self.prior_features = mc.get("prior_features", 0)
        self.eos_id = int(self.manifest["eos_id"])
        self.masks = language_bias(self.tokenizer, self.vocab_size, self.eos_id)
        self.priors = None
        if self.manifest.get("priors"):
            from keypilot.priors import Priors

            self.priors = Priors.load(self.export_dir / self.manifest["priors"])
        self.fusion = CandidateFusion(self.tokenizer, self.vocab_size, self.manifest.get("prior_weight", 1.0),
                                      suggestion_weight=self.manifest.get("suggestion_weight"))
        self._screens: ScreenCache[tuple[dict[str, np.ndarray], tuple[int, int]]] = ScreenCache(cache_size)
        self._suggestions: OrderedDict[tuple, Candidate | None] = OrderedDict()
        self._cache_size = cache_size
        self.encoder_runs = 0

    @classmethod
    def from_pretrained(cls, export_dir: str | Path, threads: int = 1, int8: bool = False,
                        cache_size: int = SCREEN_CACHE_SIZE) -> OnnxPredictor:
        """Load an export folder (``manifest.json``, graphs, ``tokenizer.json``, ``priors/``); ``int8``
        picks the INT8 graphs; ``cache_size`` encoded screens are kept (least recently used goes first)."""
        return cls(Path(export_dir), threads=threads, int8=int8, cache_size=cache_size)

    # ------------------------------------------------------------------ stages

    def screen(self, image: ImageInput, screen_key: str | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """The visual tokens of a screenshot and whether they came from the cache (``ScreenCache.get``)."""
        (encoded, _), cached = self._screens.get(image, self._encode_sized, screen_key)
        return encoded, cached

    def encode_screen(self, image: Image.Image) -> dict[str, np.ndarray]:
        """Letterbox and run the screen graph (no cache): ``global_feat [1, d]``, ``roi_feats [1, 4, d]``."""
        pixels = letterbox_array(image, self.height, self.width)[None]
        global_feat, roi_feats = self.sessions["screen"].run(None, {"image": pixels})
        self.encoder_runs += 1
        return {"global_feat": global_feat, "roi_feats": roi_feats}

    def _encode_sized(self, image: ImageInput) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
        """The visual tokens and the screenshot's ``(width, height)`` (it places the screen's text)."""
        pil = to_pil(image)
        return self.encode_screen(pil), pil.size

    def clear_cache(self) -> None:
        self._screens.clear()
        self._suggestions.clear()

    def encode_keystroke(self, screen: dict[str, np.ndarray], text: str, prev_layout: str = "EN",
                         user_id: int | None = None, layout: str | None = None, priors: Any = None,
                         reply_to: str = "") -> KeystrokeState:
        """Run the keystroke graph on cached visual tokens (``priors``: the text's ``KeystrokePriors``;
        ``reply_to``: the message an empty field answers)."""
        ids = context_ids(self.tokenizer, text, self.max_context, reply_to)[None]
        layout = pinned_layout(layout, priors)
        feeds = {
            **screen,
            **({"input_ids": ids} if self.token_table is None else {"token_emb": self.token_table.rows(ids)}),
            "attention_mask": np.ones_like(ids),
            "user_id": np.asarray([-1 if user_id is None else user_id], dtype=np.int64),
            "prev_layout": np.asarray([LAYOUT_INDEX[prev_layout]], dtype=np.int64),
            "layout_override": np.asarray([-1 if layout is None else LAYOUT_INDEX[layout]], dtype=np.int64),
        }
        if self.prior_features:
            feeds["prior_features"] = feature_row(priors, self.prior_features)[None]
        task_probs, layout_logits, layout_probs, layout_used, expert_probs, prefix, weights = self.sessions["keystroke"].run(None, feeds)
        net = KeystrokeNet(task_probs[0], layout_logits[0], layout_probs[0], int(layout_used[0]), expert_probs[0])
        return KeystrokeState(net, prefix, weights)

    def _experts(self, state: KeystrokeState, task: str, prev_emb: np.ndarray) -> np.ndarray:
        """The active experts' mixed output at the last position, ``[B, d]``, for ``task``'s conditioning."""
        row = TASKS.index(task)
        prefix, weights = state.cond_prefix[row : row + 1], state.cond_weights[row]
        feeds = {"prefix": np.repeat(prefix, len(prev_emb), axis=0), "prev_emb": prev_emb}
        return sum(float(w) * self.sessions[f"expert_{EXPERTS[i]}"].run(None, feeds)[0] for i, w in enumerate(weights) if w > 0)

    def first_token_logits(self, state: KeystrokeState, task: str) -> np.ndarray:
        """The decoder's logits of a candidate's first token ``[V]`` (task conditioning, layout shown)."""
        z = self._experts(state, task, np.zeros((1, 0, self.d_model), np.float32))
        zero = np.zeros((1, self.vocab_size), np.float32)
        return self.sessions["decode_head"].run(["logits"], {"z": z.astype(np.float32), "token_bias": zero,
                                                             "beam_scores": np.zeros(1, np.float32)})[0][0]

    def suggest(self, state: KeystrokeState) -> Candidate | None:
        """The decoder's beam search under the suggestion task, in the shown layout's language."""
        layout = LAYOUTS[state.net.layout]
        bias, first_bias = self.masks[layout, "phrase"][None], self.masks[layout, "first"][None]
        embeddings: dict[tuple[int, ...], np.ndarray] = {(): np.zeros((0, self.d_model), np.float32)}

        def step(prev: list[list[int]], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z = self._experts(state, "suggestion", np.stack([embeddings[tuple(p)] for p in prev]))
            top_scores, top_index, top_emb, _ = self.sessions["decode_head"].run(
                None, {"z": z.astype(np.float32), "token_bias": first_bias if not prev[0] else bias, "beam_scores": scores})
            # The next step needs the embeddings of the chosen tokens; the head returns them.
            for value, index, emb in zip(top_scores, top_index, top_emb):
                if np.isfinite(value):
                    beam, token = divmod(int(index), self.vocab_size)
                    embeddings[(*prev[beam], token)] = np.concatenate([embeddings[tuple(prev[beam])], emb[None]])
            return top_scores, top_index

        hypotheses = beam_search(step, self.vocab_size, self.eos_id, self.beam_width, self.max_target, self.beam_width)
        return (keep_candidates(hypotheses, self.tokenizer.decode_target, layout, 1) or [None])[0]

    # ------------------------------------------------------------------ prediction

    def predict(self, image: ImageInput, text: str, prev_layout: str = "EN", user_id: int | None = None,
                layout: str | None = None, full: bool = True, screen_key: str | None = None,
                input_type: str | None = None, screen_text: Sequence[ScreenText] | None = None) -> Prediction:
        """Answer one keystroke, as ``Predictor.predict`` does. ``layout`` pins the layout;
        ``full=False`` decodes only the list the strip shows (the others come back empty);
        ``screen_key`` names the screenshot for the cache instead of a hash of its pixels;
        ``screen_text``: the screen's text lines, None when not read (yet)."""
        if is_private(input_type):  # a password field: nothing read, predicted or kept (privacy.py)
            return withheld_prediction(layout or prev_layout)
        started = time.perf_counter()
        key = cache_key(image, screen_key)
        (screen, size), cached = self._screens.get(image, self._encode_sized, key=key)
        screen_ms = 0.0 if cached else 1000 * (time.perf_counter() - started)
        keystroke_start = time.perf_counter()
        reading = read_screen(screen_text, size)
        priors = propose(self.priors, text, reading)
        reply = reading.reply_to if is_empty_field(text) else ""
        priors_done = time.perf_counter()
        state = self.encode_keystroke(screen, text, prev_layout, user_id, layout, priors, reply)
        network_done = time.perf_counter()
        logits: dict[str, np.ndarray] = {}

        def first_logits(task: str) -> np.ndarray:
            if task not in logits:
                logits[task] = self.first_token_logits(state, task)
            return logits[task]

        def suggest() -> Candidate | None:
            # The suggestion depends on the screen, the user and the layouts only: keep it.
            entry = (key, user_id, prev_layout, state.net.layout, reply)
            if entry not in self._suggestions:
                self._suggestions[entry] = self.suggest(state)
                if len(self._suggestions) > self._cache_size:
                    self._suggestions.popitem(last=False)
            return self._suggestions[entry]

        prediction = answer(state.net, text, priors, first_logits, suggest, self.fusion, self.num_candidates, full,
                            cached, stage_times(screen_ms, keystroke_start, priors_done, network_done))
        prediction.timing_ms["keystroke"] = round(1000 * (time.perf_counter() - keystroke_start), 2)
        prediction.timing_ms["total"] = round(1000 * (time.perf_counter() - started), 2)
        return prediction


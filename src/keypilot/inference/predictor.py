"""Predictor: one keystroke (screenshot + field text) -> the keyboard's strip and next layout.

What one call does, in order:

1. The screenshot is letterboxed exactly as in training (``keypilot.inference.preprocess``)
   and encoded once: screens are cached by a hash of their pixels or the caller's id for
   them (an LRU), so typing on an unchanged screen runs only the text side (``encode_keystroke``).
2. The context is tokenized as in training (``encode_context``); the model gives task,
   layout (hysteresis against ``prev_layout``: method.md) and expert probabilities.
3. Candidates: corrections and completions are beam-searched with the decoder conditioned on
   the error-correction, resp. auto-completion, task embedding (so both lists exist whatever
   the router says); the suggestion (beam 4, up to ``max_target_tokens``) only when the field
   is empty, the only time it is shown. Decoding is conditioned on the layout actually
   shown and obeys Lang(candidate) = Lang(layout): tokens of another language are masked
   out of the beam and every candidate is checked with ``lang_of``.
4. The strip (``shown``) follows method.md's priority: "suggestion when C_t is empty;
   correction when the last word is wrong; completion otherwise". "The last word is wrong"
   is the task router's verdict (predicted task = error_correction); emptiness is read from
   the text, not from the router, because a suggestion has nowhere else to go.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from keypilot.data.dataset import encode_context
from keypilot.inference.postprocess import (
    Candidate,
    Prediction,
    allowed_tokens,
    candidate_beam_width,
    format_prediction,  # noqa: F401  (its home was here; it is torch-free, in postprocess)
    is_empty_field,
    keep_candidates,
    lists_to_decode,
    strip_for,
    token_classes,
)
from keypilot.inference.preprocess import SCREEN_CACHE_SIZE, ImageInput, ScreenCache, letterbox_array, to_pil
from keypilot.labels import EXPERTS, LAYOUT_INDEX, LAYOUTS, TASK_INDEX, TASKS
from keypilot.models.routers import apply_hysteresis


@dataclass
class BatchResult:
    """``predict_batch`` output: predictions plus the arrays the evaluation metrics need."""

    predictions: list[Prediction]
    global_feat: np.ndarray  # N x d
    text_feat: np.ndarray  # N x d
    expert_probs: np.ndarray  # N x 5, EXPERTS order
    layout_logits: np.ndarray  # N x 5, LAYOUTS order, before hysteresis


class LanguageMasks:
    """``postprocess.allowed_tokens`` per (layout, phrase) as bool tensors on the model's device,
    for ``allowed_token_mask`` (Lang(candidate) = Lang(layout))."""

    def __init__(self, tokenizer: Any, vocab_size: int, device: torch.device) -> None:
        classes = token_classes(tokenizer, vocab_size)
        self._masks = {(layout, phrase): torch.from_numpy(allowed_tokens(classes, layout, phrase)).to(device)
                       for layout in LAYOUTS for phrase in (False, True)}

    def allowed(self, layout: str, phrase: bool) -> torch.Tensor:
        """Bool mask ``V`` of the tokens a candidate (a phrase when ``phrase``) may use under ``layout``."""
        return self._masks[layout, phrase]


class Predictor:
    """A trained run on one device, answering keystrokes (``predict``) or records (``predict_batch``)."""

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu", cache_size: int = SCREEN_CACHE_SIZE) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        mc = model.config["model"]
        self.height, self.width = mc["image_height"], mc["image_width"]
        self.max_context, self.max_target = mc["max_context_tokens"], mc["max_target_tokens"]
        self.beam_width = mc["decoder"]["beam_width"]
        self.num_candidates = mc["decoder"]["num_candidates"]
        self.candidate_width = candidate_beam_width(self.num_candidates)
        self.masks = LanguageMasks(tokenizer, mc["vocab_size"], self.device)
        self._screens: ScreenCache[dict[str, torch.Tensor]] = ScreenCache(cache_size)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, device: str = "cpu", cache_size: int = SCREEN_CACHE_SIZE) -> Predictor:
        """Load ``RUN/config.yaml`` + ``RUN/model.safetensors`` and ``RUN/tokenizer.json``;
        ``cache_size`` encoded screens are kept (least recently used goes first)."""
        from keypilot.models.keypilot_model import KeyPilotModel
        from keypilot.tokenizer import KeyPilotTokenizer

        run_dir = Path(run_dir)
        for name in ("config.yaml", "model.safetensors", "tokenizer.json"):
            if not (run_dir / name).exists():
                raise FileNotFoundError(f"{run_dir / name} is missing: not a trained run folder")
        return cls(KeyPilotModel.from_pretrained(run_dir), KeyPilotTokenizer.from_file(run_dir / "tokenizer.json"), device,
                   cache_size)

    # ------------------------------------------------------------------ inputs

    def _image_tensor(self, image: ImageInput) -> torch.Tensor:
        return torch.from_numpy(letterbox_array(to_pil(image), self.height, self.width))

    def _context(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [encode_context(self.tokenizer, text, self.max_context) for text in texts]
        ids = torch.tensor([p[0] for p in pairs], dtype=torch.long, device=self.device)
        mask = torch.tensor([p[1] for p in pairs], dtype=torch.long, device=self.device)
        return ids, mask

    def screen(self, image: ImageInput, screen_key: str | None = None) -> tuple[dict[str, torch.Tensor], bool]:
        """The encoded screen and whether it came from the cache (``ScreenCache.get`` on ``screen_key``)."""
        return self._screens.get(image, self._encode_screen, screen_key)

    def _encode_screen(self, image: ImageInput) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return self.model.encode_screen(self._image_tensor(image)[None].to(self.device))

    def clear_cache(self) -> None:
        self._screens.clear()

    # ------------------------------------------------------------------ decoding

    def _conditioning(self, out: dict[str, torch.Tensor], task: str, layouts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decoder inputs for a forced task and the shown layouts: (h_t, e_task, e_layout, g)."""
        h_t = out["h_t"]
        e_task = self.model.task_router.codebook[TASK_INDEX[task]].expand_as(h_t)
        layout_weights = F.one_hot(layouts, len(LAYOUTS)).to(h_t.dtype)
        e_layout = layout_weights @ self.model.layout_router.codebook
        _, expert_probs = self.model.decoder.moe.route(h_t, e_task, e_layout, layout_weights)
        return h_t, e_task, e_layout, expert_probs

    def _candidates(self, out: dict[str, torch.Tensor], task: str, layouts: torch.Tensor, rows: list[int],
                    count: int, beam_width: int) -> dict[int, list[Candidate]]:
        """Up to ``count`` distinct decoded texts of the layout's language, best first, per row."""
        if not rows:
            return {}
        index = torch.tensor(rows, device=self.device)
        cond = [t[index] for t in self._conditioning(out, task, layouts)]
        phrase = task == "suggestion"
        allowed = torch.stack([self.masks.allowed(LAYOUTS[int(layouts[r])], phrase) for r in rows])
        # Every candidate starts with a token of the layout's own language (and is never empty),
        # so a phrase cannot be a lone symbol that the language check would then throw away.
        first = torch.stack([self.masks.allowed(LAYOUTS[int(layouts[r])], False) for r in rows])
        beams = self.model.decoder.beam_search(*cond, eos_id=self.tokenizer.eos_id, beam_width=beam_width,
                                               max_tokens=self.max_target, num_return=beam_width,
                                               allowed_token_mask=allowed, first_token_mask=first)
        return {row: keep_candidates(hypotheses, self.tokenizer.decode_target, LAYOUTS[int(layouts[row])], count)
                for row, hypotheses in zip(rows, beams)}

    # ------------------------------------------------------------------ prediction

    def _answer(self, out: dict[str, torch.Tensor], texts: Sequence[str], layouts: torch.Tensor,
                cached: Sequence[bool], timing: Sequence[dict[str, float]], full: bool = True) -> list[Prediction]:
        """Predictions from the model outputs. ``full=False`` decodes only the list the strip
        shows (what a keyboard needs per keystroke; the other lists come back empty)."""
        rows = list(range(len(texts)))
        task_probs, layout_probs = out["task_probs"].tolist(), out["layout_probs"].tolist()
        expert_probs, raw = out["expert_probs"].tolist(), out["layout_logits"].argmax(-1).tolist()
        tasks = [TASKS[int(np.argmax(task_probs[r]))] for r in rows]
        empty = [r for r in rows if is_empty_field(texts[r])]
        width, count = self.candidate_width, self.num_candidates
        suggestions = self._candidates(out, "suggestion", layouts, empty, 1, self.beam_width)
        wants = [lists_to_decode(tasks[r], texts[r], full, bool(suggestions.get(r))) for r in rows]
        wants_correction = [r for r in rows if wants[r][0]]
        wants_completion = [r for r in rows if wants[r][1]]
        corrections = self._candidates(out, "error_correction", layouts, wants_correction, count, width)
        completions = self._candidates(out, "auto_completion", layouts, wants_completion, count, width)
        predictions = []
        for r in rows:
            suggestion = (suggestions.get(r) or [None])[0]
            shown, kind = strip_for(tasks[r], texts[r], corrections.get(r, []), completions.get(r, []), suggestion)
            predictions.append(Prediction(
                task=tasks[r],
                task_probs=dict(zip(TASKS, task_probs[r])),
                corrections=corrections.get(r, []),
                completions=completions.get(r, []),
                suggestion=suggestion,
                layout=LAYOUTS[int(layouts[r])],
                layout_raw=LAYOUTS[raw[r]],
                layout_probs=dict(zip(LAYOUTS, layout_probs[r])),
                expert_probs=dict(zip(EXPERTS, expert_probs[r])),
                shown=shown,
                screen_cached=cached[r],
                timing_ms=timing[r],
                shown_kind=kind,
            ))
        return predictions

    def predict(self, image: ImageInput, text: str, prev_layout: str = "EN", user_id: int | None = None,
                layout: str | None = None, full: bool = True, screen_key: str | None = None) -> Prediction:
        """Answer one keystroke. ``image``: a path, a PIL image or an H x W x 3 uint8 array.

        ``layout`` pins the layout (the user chose it with the layout key): candidates then
        follow it instead of the router's choice. ``full=False`` decodes only the strip's list.
        ``screen_key`` names the screenshot for the cache instead of a hash of its pixels
        (it must identify these pixels only, e.g. the server's ``screen_id``).
        """
        started = time.perf_counter()
        screen, cached = self.screen(image, screen_key)
        screen_ms = 0.0 if cached else 1000 * (time.perf_counter() - started)
        keystroke_start = time.perf_counter()
        ids, mask = self._context([text])
        with torch.inference_mode():
            out = self.model.encode_keystroke(
                screen, ids, mask,
                user_id=torch.tensor([-1 if user_id is None else user_id], device=self.device),
                prev_layout=torch.tensor([LAYOUT_INDEX[prev_layout]], device=self.device),
            )  # fmt: skip
            layouts = out["layout_next"] if layout is None else torch.tensor([LAYOUT_INDEX[layout]], device=self.device)
            prediction = self._answer(out, [text], layouts, [cached], [{"screen": round(screen_ms, 2)}], full)[0]
        # keystroke time includes decoding the candidates, so it is taken after _answer
        prediction.timing_ms["keystroke"] = round(1000 * (time.perf_counter() - keystroke_start), 2)
        prediction.timing_ms["total"] = round(1000 * (time.perf_counter() - started), 2)
        return prediction

    def predict_batch(self, records: Sequence[Any], batch_size: int = 16, blank_screen: bool = False) -> BatchResult:
        """Predict records (``image, context, prev_layout, user_id``) in batches.

        ``blank_screen`` feeds a black screenshot instead (the text-only ablation). The screen
        cache is not used; ``timing_ms`` is the batch's time shared equally by its records.
        """
        predictions: list[Prediction] = []
        arrays: dict[str, list[np.ndarray]] = {"global_feat": [], "text_feat": [], "expert_probs": [], "layout_logits": []}
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            began = time.perf_counter()
            if blank_screen:
                images = torch.zeros(len(chunk), 3, self.height, self.width)
            else:
                images = torch.stack([self._image_tensor(r.image) for r in chunk])
            ids, mask = self._context([r.context for r in chunk])
            with torch.inference_mode():
                out = self.model.encode_keystroke(
                    self.model.encode_screen(images.to(self.device)), ids, mask,
                    user_id=torch.tensor([-1 if r.user_id is None else r.user_id for r in chunk], device=self.device),
                    prev_layout=torch.tensor([LAYOUT_INDEX[r.prev_layout or "EN"] for r in chunk], device=self.device),
                )  # fmt: skip
                elapsed = 1000 * (time.perf_counter() - began) / len(chunk)
                timing = [{"screen": 0.0, "keystroke": round(elapsed, 2), "total": round(elapsed, 2)}] * len(chunk)
                predictions += self._answer(out, [r.context for r in chunk], out["layout_next"], [False] * len(chunk), timing)
            for key in arrays:
                arrays[key].append(out[key].float().cpu().numpy())
        return BatchResult(predictions, **{key: np.concatenate(value) for key, value in arrays.items()})

    def hysteresis(self, layout_logits: np.ndarray, prev_layout: str) -> str:
        """The model's layout rule applied to one row of raw layout logits (for session replays)."""
        router = self.model.layout_router
        chosen, _ = apply_hysteresis(torch.as_tensor(layout_logits)[None].float(),
                                     torch.tensor([LAYOUT_INDEX[prev_layout]]), router.hysteresis_bias, router.switch_threshold)
        return LAYOUTS[int(chosen)]

    def measure_latency(self, image: ImageInput, text: str, repeats: int = 3) -> dict[str, float]:
        """Median batch-1 times in ms: a new screen (``screen``) and a keystroke on a cached one."""
        screens, keystrokes = [], []
        for _ in range(repeats):
            self.clear_cache()
            screens.append(self.predict(image, text).timing_ms["screen"])
            keystrokes.append(self.predict(image, text).timing_ms["keystroke"])
        return {"screen": float(np.median(screens)), "keystroke": float(np.median(keystrokes))}

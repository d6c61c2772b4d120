"""Predictor: one keystroke (screenshot + field text) -> the keyboard's strip and next layout.

What one call does, in order:

1. The screenshot is letterboxed exactly as in training (``keypilot.data.dataset.letterbox``)
   and encoded once: screens are cached by a hash of their pixels (small LRU), so typing on
   an unchanged screen runs only the text side (``encode_keystroke``).
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

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from keypilot.data.dataset import encode_context, letterbox
from keypilot.labels import EXPERTS, LAYOUT_INDEX, LAYOUTS, TASK_INDEX, TASKS, lang_of
from keypilot.models.routers import apply_hysteresis

STRIP_SIZE = 3  # candidates a phone keyboard shows above the keys
SCREEN_CACHE_SIZE = 8
ImageInput = str | Path | Image.Image | np.ndarray


@dataclass
class Candidate:
    text: str
    prob: float


@dataclass
class Prediction:
    """One keystroke's answer; ``to_dict()`` is the contracts' "Predictor result"."""

    task: str
    task_probs: dict[str, float]
    corrections: list[Candidate]
    completions: list[Candidate]
    suggestion: Candidate | None
    layout: str
    layout_raw: str
    layout_probs: dict[str, float]
    expert_probs: dict[str, float]
    shown: list[str]
    screen_cached: bool
    timing_ms: dict[str, float]
    # Which list the strip comes from: correction, suggestion or completion (not in the JSON;
    # the keyboard needs it to know what tapping a candidate replaces).
    shown_kind: str = field(default="completion")

    def to_dict(self) -> dict[str, Any]:
        def cand(c: Candidate) -> dict[str, Any]:
            return {"text": c.text, "prob": c.prob}

        return {
            "task": self.task,
            "task_probs": self.task_probs,
            "corrections": [cand(c) for c in self.corrections],
            "completions": [cand(c) for c in self.completions],
            "suggestion": cand(self.suggestion) if self.suggestion else None,
            "layout": self.layout,
            "layout_raw": self.layout_raw,
            "layout_probs": self.layout_probs,
            "expert_probs": self.expert_probs,
            "shown": self.shown,
            "screen_cached": self.screen_cached,
            "timing_ms": self.timing_ms,
        }


@dataclass
class BatchResult:
    """``predict_batch`` output: predictions plus the arrays the evaluation metrics need."""

    predictions: list[Prediction]
    global_feat: np.ndarray  # N x d
    text_feat: np.ndarray  # N x d
    expert_probs: np.ndarray  # N x 5, EXPERTS order
    layout_logits: np.ndarray  # N x 5, LAYOUTS order, before hysteresis


class LanguageMasks:
    """Which vocabulary tokens may appear in a candidate for each layout (Lang(y) = Lang(layout)).

    A word (correction, completion) is made of tokens of the layout's own language. A phrase
    (suggestion) may also carry punctuation, digits and emoji when the layout is EN or ZH,
    since ``lang_of`` still calls such text English or Chinese. Tokens holding part of a
    multi-byte character (they decode to U+FFFD) stay allowed where such characters are
    expected; the decoded candidate is checked with ``lang_of`` afterwards in any case.
    """

    PHRASE_EXTRA: dict[str, tuple[str, ...]] = {"EN": ("SYM", "NUM", "EMOJI"), "ZH": ("SYM", "NUM", "EMOJI")}
    MULTIBYTE: tuple[str, ...] = ("ZH", "SYM", "EMOJI")

    def __init__(self, tokenizer: Any, vocab_size: int, device: torch.device) -> None:
        kinds: list[str | None] = []
        for token_id in range(vocab_size):
            text = tokenizer.token(token_id) if token_id < tokenizer.vocab_size else None
            if text is None:
                kinds.append(None)  # special or unused id: never generated
            elif "\ufffd" in text:
                kinds.append("partial")
            elif not text.strip():
                kinds.append("space")
            else:
                kinds.append(lang_of(text))
        self._masks: dict[tuple[str, bool], torch.Tensor] = {}
        for layout in LAYOUTS:
            for phrase in (False, True):
                ok = {layout} | (set(self.PHRASE_EXTRA.get(layout, ())) | {"space"} if phrase else set())
                if layout in self.MULTIBYTE:
                    ok.add("partial")
                self._masks[layout, phrase] = torch.tensor([k in ok for k in kinds], dtype=torch.bool, device=device)

    def allowed(self, layout: str, phrase: bool) -> torch.Tensor:
        """Bool mask ``V`` of the tokens a candidate (a phrase when ``phrase``) may use under ``layout``."""
        return self._masks[layout, phrase]


def image_key(image: ImageInput) -> str:
    """Content hash of a screenshot: the same pixels give the same key whatever the input type."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(image, (str, Path)):
        digest.update(Path(image).read_bytes())
    elif isinstance(image, Image.Image):
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    else:
        array = np.ascontiguousarray(image)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def to_pil(image: ImageInput) -> Image.Image:
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image array must be H x W x 3 uint8, got {array.shape} {array.dtype}")
    return Image.fromarray(array)


def is_empty_field(text: str) -> bool:
    return not text.strip()


def strip_for(task: str, text: str, corrections: list[Candidate], completions: list[Candidate],
              suggestion: Candidate | None) -> tuple[list[str], str]:
    """The strip in method.md's priority (see the module docstring) and the list it came from."""
    if is_empty_field(text) and suggestion is not None:
        return [suggestion.text], "suggestion"
    if task == "error_correction" and not is_empty_field(text):
        return [c.text for c in corrections[:STRIP_SIZE]], "correction"
    return [c.text for c in completions[:STRIP_SIZE]], "completion"


class Predictor:
    """A trained run on one device, answering keystrokes (``predict``) or records (``predict_batch``)."""

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        mc = model.config["model"]
        self.height, self.width = mc["image_height"], mc["image_width"]
        self.max_context, self.max_target = mc["max_context_tokens"], mc["max_target_tokens"]
        self.beam_width = mc["decoder"]["beam_width"]
        self.num_candidates = mc["decoder"]["num_candidates"]
        self.masks = LanguageMasks(tokenizer, mc["vocab_size"], self.device)
        self._screens: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, device: str = "cpu") -> Predictor:
        """Load ``RUN/config.yaml`` + ``RUN/model.safetensors`` and ``RUN/tokenizer.json``."""
        from keypilot.models.keypilot_model import KeyPilotModel
        from keypilot.tokenizer import KeyPilotTokenizer

        run_dir = Path(run_dir)
        for name in ("config.yaml", "model.safetensors", "tokenizer.json"):
            if not (run_dir / name).exists():
                raise FileNotFoundError(f"{run_dir / name} is missing: not a trained run folder")
        return cls(KeyPilotModel.from_pretrained(run_dir), KeyPilotTokenizer.from_file(run_dir / "tokenizer.json"), device)

    # ------------------------------------------------------------------ inputs

    def _image_tensor(self, image: ImageInput) -> torch.Tensor:
        array, _, _ = letterbox(to_pil(image), self.height, self.width)
        return torch.from_numpy(array)

    def _context(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [encode_context(self.tokenizer, text, self.max_context) for text in texts]
        ids = torch.tensor([p[0] for p in pairs], dtype=torch.long, device=self.device)
        mask = torch.tensor([p[1] for p in pairs], dtype=torch.long, device=self.device)
        return ids, mask

    def screen(self, image: ImageInput) -> tuple[dict[str, torch.Tensor], bool]:
        """The encoded screen and whether it came from the cache."""
        key = image_key(image)
        if key in self._screens:
            self._screens.move_to_end(key)
            return self._screens[key], True
        with torch.inference_mode():
            encoded = self.model.encode_screen(self._image_tensor(image)[None].to(self.device))
        self._screens[key] = encoded
        if len(self._screens) > SCREEN_CACHE_SIZE:
            self._screens.popitem(last=False)
        return encoded, False

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
        beams = self.model.decoder.beam_search(*cond, eos_id=self.tokenizer.eos_id, beam_width=beam_width,
                                               max_tokens=self.max_target, num_return=beam_width,
                                               allowed_token_mask=allowed)
        result: dict[int, list[Candidate]] = {}
        for row, hypotheses in zip(rows, beams):
            layout, kept = LAYOUTS[int(layouts[row])], {}
            for tokens, logprob in hypotheses:
                text = self.tokenizer.decode_target(tokens).strip()
                # U+FFFD: the beam stopped inside a multi-byte character; not a real candidate.
                if text and "\ufffd" not in text and text not in kept and lang_of(text) == layout:
                    kept[text] = Candidate(text, float(np.exp(logprob)))
            result[row] = list(kept.values())[:count]
        return result

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
        # Wider than the list so that masking, duplicates and the language check still leave enough.
        width, count = 2 * self.num_candidates, self.num_candidates
        suggestions = self._candidates(out, "suggestion", layouts, empty, 1, self.beam_width)
        wants_correction = [r for r in rows if full or (tasks[r] == "error_correction" and r not in empty)]
        wants_completion = [r for r in rows if full or (r not in wants_correction and not suggestions.get(r))]
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
                layout: str | None = None, full: bool = True) -> Prediction:
        """Answer one keystroke. ``image``: a path, a PIL image or an H x W x 3 uint8 array.

        ``layout`` pins the layout (the user chose it with the layout key): candidates then
        follow it instead of the router's choice. ``full=False`` decodes only the strip's list.
        """
        started = time.perf_counter()
        screen, cached = self.screen(image)
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
            keystroke_ms = 1000 * (time.perf_counter() - keystroke_start)
            timing = {"screen": round(screen_ms, 2), "keystroke": round(keystroke_ms, 2)}
            prediction = self._answer(out, [text], layouts, [cached], [timing], full)[0]
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


def format_prediction(prediction: Prediction) -> str:
    """A person's view of one prediction (``keypilot predict`` without ``--json``)."""
    def cands(items: list[Candidate]) -> str:
        return ", ".join(f"{c.text} ({c.prob:.2g})" for c in items) or "(none)"

    p = prediction
    lines = [
        f"strip        {' | '.join(p.shown) or '(empty)'}   [{p.shown_kind}]",
        f"task         {p.task}   " + "  ".join(f"{k} {v:.2f}" for k, v in p.task_probs.items()),
        f"layout       {p.layout} (router alone: {p.layout_raw})   " + "  ".join(f"{k} {v:.2f}" for k, v in p.layout_probs.items()),
        f"corrections  {cands(p.corrections)}",
        f"completions  {cands(p.completions)}",
        f"suggestion   {cands([p.suggestion]) if p.suggestion else '(field not empty)'}",
        f"experts      " + "  ".join(f"{k} {v:.2f}" for k, v in p.expert_probs.items()),
        f"time         {p.timing_ms['total']:.1f} ms ({'cached screen' if p.screen_cached else 'new screen'})",
    ]
    return "\n".join(lines)

"""Predictor: one keystroke (screenshot + field text) -> the keyboard's strip and next layout.

What one call does, in order:

1. The screenshot is letterboxed exactly as in training (``keypilot.preprocess``)
   and encoded once: screens are cached by a hash of their pixels or the caller's id for
   them (an LRU), so typing on an unchanged screen runs only the text side (``encode_keystroke``).
2. The priors (``keypilot.priors``) read the field's text: candidate corrections and
   completions per language and the features the routers read.
3. The context is tokenized as in training; the model gives task, layout (hysteresis against
   ``prev_layout``: method.md) and expert probabilities.
4. ``keypilot.inference.candidates.answer`` (shared with the ONNX predictor) ranks the
   candidates: the decoder's first-token logits under the error-correction, resp.
   auto-completion, task embedding and the layout shown, fused with the prior; every
   candidate is in the shown layout's language. The suggestion for an empty field is a beam
   search of the decoder, kept per screen (it depends on the screen, the user and the
   layouts only). The strip follows method.md's priority: "suggestion when C_t is empty;
   correction when the last word is wrong; completion otherwise" ("wrong" is the task
   router's verdict).

This module supplies the network's numbers with torch; everything after them is backend-neutral.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from keypilot.data.dataset import encode_context, reply_to, screen_reading
from keypilot.inference.candidates import (
    CandidateFusion,
    KeystrokeNet,
    answer,
    load_layout_offsets,
    load_prior_weight,
    load_priors,
    stage_times,
)
from keypilot.inference.postprocess import (
    Candidate,
    Prediction,
    allowed_tokens,
    is_empty_field,
    keep_candidates,
    token_classes,
)
from keypilot.inference.privacy import is_private, withheld_prediction
from keypilot.labels import LAYOUT_INDEX, LAYOUTS, TASK_INDEX, TASKS
from keypilot.preprocess import SCREEN_CACHE_SIZE, ImageInput, ScreenCache, cache_key, letterbox_array, to_pil
from keypilot.prior_fusion import feature_row, pinned_layout, propose
from keypilot.priors.screen import read_screen
from keypilot.screen_text import ScreenText
from keypilot.run_folder import TOKENIZER_FILE, missing_run_files
from keypilot.models.routers import apply_hysteresis



@dataclass
class BatchResult:
    """``predict_batch`` output: predictions plus the arrays the evaluation metrics need."""

    predictions: list[Prediction]
    global_feat: np.ndarray  # N x d
    text_feat: np.ndarray  # N x d
    expert_probs: np.ndarray  # N x 5, EXPERTS order
    layout_logits: np.ndarray  # N x 5, LAYOUTS order, before hysteresis


@dataclass
class NetworkBatch:
    """The network's side of a batch of records: what ``answer`` and the evaluation need."""

    records: Sequence[Any]
    nets: list[KeystrokeNet]
    priors: list[Any]  # KeystrokePriors per record (None without priors)
    first_logits: dict[str, np.ndarray]  # task -> B x V (every task), under the layout shown
    arrays: dict[str, np.ndarray]  # global_feat, text_feat, expert_probs, layout_logits
    suggestions: dict[int, Candidate | None]  # row -> suggestion (empty fields only)
    seconds: float


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


def load_model(run_dir: str | Path) -> Any:
    """The run's model (eval mode) as both predictors decide with it: its weights, and the layout
    router's offsets fitted on the validation split when ``RUN/fusion.json`` has them."""
    from keypilot.models.keypilot_model import KeyPilotModel

    model = KeyPilotModel.from_pretrained(run_dir).eval()
    offsets = load_layout_offsets(run_dir)
    if offsets is not None:
        model.layout_router.logit_offset.copy_(torch.tensor(offsets))
    return model


class Predictor:
    """A trained run on one device, answering keystrokes (``predict``) or records (``predict_batch``).

    Args:
        model: a ``KeyPilotModel``; tokenizer: its ``KeyPilotTokenizer``.
        priors: the run's ``keypilot.priors.Priors`` (None: the network alone).
        prior_weight: beta of the fusion (default: the one the model learned);
        suggestion_weight: beta for the suggestion's copy candidates (default: ``prior_weight``).
    """

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu", cache_size: int = SCREEN_CACHE_SIZE,
                 priors: Any = None, prior_weight: float | None = None, suggestion_weight: float | None = None) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        mc = model.config["model"]
        self.height, self.width = mc["image_height"], mc["image_width"]
        self.max_context, self.max_target = mc["max_context_tokens"], mc["max_target_tokens"]
        self.beam_width = mc["decoder"]["beam_width"]
        self.num_candidates = mc["decoder"]["num_candidates"]
        self.prior_features = mc.get("prior_features", 0)
        self.masks = LanguageMasks(tokenizer, mc["vocab_size"], self.device)
        self.priors = priors
        weight = float(model.decoder.prior_weight.detach()) if prior_weight is None else prior_weight
        self.fusion = CandidateFusion(tokenizer, mc["vocab_size"], weight, suggestion_weight=suggestion_weight)
        self._screens: ScreenCache[tuple[dict[str, torch.Tensor], tuple[int, int]]] = ScreenCache(cache_size)
        self._suggestions: OrderedDict[tuple, Candidate | None] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, device: str = "cpu", cache_size: int = SCREEN_CACHE_SIZE) -> Predictor:
        """Load ``RUN/config.yaml`` + ``RUN/model.safetensors``, ``RUN/tokenizer.json`` and, when the
        run has them, ``RUN/priors/`` and ``RUN/fusion.json`` (beta, the layout offsets); ``cache_size``
        encoded screens are kept."""
        from keypilot.tokenizer import KeyPilotTokenizer

        run_dir = Path(run_dir)
        missing = missing_run_files(run_dir)
        if missing:
            raise FileNotFoundError(f"{run_dir / missing[0]} is missing: not a trained run folder")
        model = load_model(run_dir)
        return cls(model, KeyPilotTokenizer.from_file(run_dir / TOKENIZER_FILE), device, cache_size,
                   priors=load_priors(run_dir),
                   prior_weight=load_prior_weight(run_dir, learned := float(model.decoder.prior_weight.detach())),
                   suggestion_weight=load_prior_weight(run_dir, learned, "suggestion_weight"))

    # ------------------------------------------------------------------ inputs

    def _image_tensor(self, image: ImageInput) -> torch.Tensor:
        return torch.from_numpy(letterbox_array(to_pil(image), self.height, self.width))

    def _context(self, texts: Sequence[str], replies: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [encode_context(self.tokenizer, text, self.max_context, reply) for text, reply in zip(texts, replies)]
        ids = torch.tensor([p[0] for p in pairs], dtype=torch.long, device=self.device)
        mask = torch.tensor([p[1] for p in pairs], dtype=torch.long, device=self.device)
        return ids, mask

    def screen(self, image: ImageInput, screen_key: str | None = None) -> tuple[dict[str, torch.Tensor], bool]:
        """The encoded screen and whether it came from the cache (``ScreenCache.get`` on ``screen_key``)."""
        (encoded, _), cached = self._screens.get(image, self._encode_screen, screen_key)
        return encoded, cached

    def _encode_screen(self, image: ImageInput) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
        """The encoded screen and the screenshot's ``(width, height)`` (it places the screen's text)."""
        pil = to_pil(image)
        pixels = torch.from_numpy(letterbox_array(pil, self.height, self.width))
        with torch.inference_mode():
            return self.model.encode_screen(pixels[None].to(self.device)), pil.size

    def clear_cache(self) -> None:
        self._screens.clear()
        self._suggestions.clear()

    # ------------------------------------------------------------------ the network's numbers

    def _keystrokes(self, screen: dict[str, torch.Tensor], texts: Sequence[str], replies: Sequence[str],
                    priors: Sequence[Any], user_ids: Sequence[int | None], prev_layouts: Sequence[str],
                    layout: str | None = None) -> tuple[dict[str, torch.Tensor], list[KeystrokeNet], torch.Tensor]:
        """Routers and encoder for a batch of keystrokes on encoded screens: (outputs, nets, layouts shown).
        ``replies``: the message each empty field answers ("" for none)."""
        ids, mask = self._context(texts, replies)
        features = torch.from_numpy(np.stack([feature_row(p, self.prior_features) for p in priors])).to(self.device)
        out = self.model.encode_keystroke(
            screen, ids, mask,
            user_id=torch.tensor([-1 if u is None else u for u in user_ids], device=self.device),
            prev_layout=torch.tensor([LAYOUT_INDEX[p or "EN"] for p in prev_layouts], device=self.device),
            prior_features=features if self.prior_features else None,
        )  # fmt: skip
        pinned = [pinned_layout(layout, p) for p in priors]
        layouts = torch.tensor([int(out["layout_next"][i]) if p is None else LAYOUT_INDEX[p] for i, p in enumerate(pinned)],
                               device=out["layout_next"].device)
        arrays = {key: out[key].float().cpu().numpy() for key in ("task_probs", "layout_logits", "layout_probs", "expert_probs")}
        nets = [KeystrokeNet(arrays["task_probs"][i], arrays["layout_logits"][i], arrays["layout_probs"][i], int(layouts[i]),
                             arrays["expert_probs"][i]) for i in range(len(texts))]
        return out, nets, layouts

    def _conditioning(self, out: dict[str, torch.Tensor], task: str, layouts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decoder inputs for a forced task and the shown layouts: (h_t, e_task, e_layout, g)."""
        h_t = out["h_t"]
        e_task = self.model.task_router.codebook[TASK_INDEX[task]].expand_as(h_t)
        layout_weights = F.one_hot(layouts, len(LAYOUTS)).to(h_t.dtype)
        e_layout = layout_weights @ self.model.layout_router.codebook
        _, expert_probs = self.model.decoder.moe.route(h_t, e_task, e_layout, layout_weights)
        return h_t, e_task, e_layout, expert_probs

    def _first_logits(self, out: dict[str, torch.Tensor], task: str, layouts: torch.Tensor) -> np.ndarray:
        """The decoder's first-token logits ``B x V`` under ``task``'s conditioning and the layouts shown."""
        return self.model.decoder.first_token_logits(*self._conditioning(out, task, layouts)).float().cpu().numpy()

    def _suggest(self, out: dict[str, torch.Tensor], layouts: torch.Tensor, rows: list[int]) -> dict[int, Candidate | None]:
        """The suggestion for each row (an empty field): the decoder's beam under the suggestion task."""
        if not rows:
            return {}
        index = torch.tensor(rows, device=self.device)
        cond = [t[index] for t in self._conditioning(out, "suggestion", layouts)]
        allowed = torch.stack([self.masks.allowed(LAYOUTS[int(layouts[r])], True) for r in rows])
        # A phrase starts with a token of the layout's own language (and is never empty), so it
        # cannot be a lone symbol that the language check would then throw away.
        first = torch.stack([self.masks.allowed(LAYOUTS[int(layouts[r])], False) for r in rows])
        beams = self.model.decoder.beam_search(*cond, eos_id=self.tokenizer.eos_id, beam_width=self.beam_width,
                                               max_tokens=self.max_target, num_return=self.beam_width,
                                               allowed_token_mask=allowed, first_token_mask=first)
        return {row: (keep_candidates(hypotheses, self.tokenizer.decode_target, LAYOUTS[int(layouts[row])], 1) or [None])[0]
                for row, hypotheses in zip(rows, beams)}

    # ------------------------------------------------------------------ prediction

    def predict(self, image: ImageInput, text: str, prev_layout: str = "EN", user_id: int | None = None,
                layout: str | None = None, full: bool = True, screen_key: str | None = None,
                input_type: str | None = None, screen_text: Sequence[ScreenText] | None = None) -> Prediction:
        """Answer one keystroke. ``image``: a path, a PIL image or an H x W x 3 uint8 array.

        ``layout`` pins the layout (the user chose it with the layout key): candidates then
        follow it instead of the router's choice. ``full=False`` decodes only the strip's list.
        ``screen_key`` names the screenshot for the cache instead of a hash of its pixels
        (it must identify these pixels only, e.g. the server's ``screen_id``). ``screen_text``:
        the screen's text lines (``keypilot.ocr``), None when not read (yet).
        """
        if is_private(input_type):  # a password field: nothing read, predicted or kept (privacy.py)
            return withheld_prediction(layout or prev_layout)
        started = time.perf_counter()
        key = cache_key(image, screen_key)
        (screen, size), cached = self._screens.get(image, self._encode_screen, key=key)
        screen_ms = 0.0 if cached else 1000 * (time.perf_counter() - started)
        keystroke_start = time.perf_counter()
        reading = read_screen(screen_text, size)
        priors = propose(self.priors, text, reading)
        reply = reading.reply_to if is_empty_field(text) else ""
        priors_done = time.perf_counter()
        with torch.inference_mode():
            out, nets, layouts = self._keystrokes(screen, [text], [reply], [priors], [user_id], [prev_layout], layout)
            network_done = time.perf_counter()
            logits: dict[str, np.ndarray] = {}

            def first_logits(task: str) -> np.ndarray:
                if task not in logits:
                    logits[task] = self._first_logits(out, task, layouts)[0]
                return logits[task]

            def suggest() -> Candidate | None:
                # The suggestion depends on the screen, the user and the layouts only: keep it.
                entry = (key, user_id, prev_layout, int(layouts[0]), reply)
                if entry not in self._suggestions:
                    self._suggestions[entry] = self._suggest(out, layouts, [0])[0]
                    if len(self._suggestions) > self._cache_size:
                        self._suggestions.popitem(last=False)
                return self._suggestions[entry]

            prediction = answer(nets[0], text, priors, first_logits, suggest, self.fusion, self.num_candidates, full,
                                cached, stage_times(screen_ms, keystroke_start, priors_done, network_done))
        # keystroke time includes ranking the candidates, so it is taken after answer()
        prediction.timing_ms["keystroke"] = round(1000 * (time.perf_counter() - keystroke_start), 2)
        prediction.timing_ms["total"] = round(1000 * (time.perf_counter() - started), 2)
        return prediction

    def network_batches(self, records: Sequence[Any], batch_size: int = 16, blank_screen: bool = False,
                        suggestions: bool = True, screen_text_off: bool = False) -> Iterator[NetworkBatch]:
        """The network's outputs for records (``image, context, prev_layout, user_id`` and
        optionally ``screen_text``), batch by batch: first-token logits of every task under the
        layout shown, and the network's suggestions.

        ``blank_screen`` feeds a black screenshot instead (the text-only ablation);
        ``screen_text_off`` ignores the records' screen text (the channel-off ablation).
        """
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            began = time.perf_counter()
            if blank_screen:
                images = torch.zeros(len(chunk), 3, self.height, self.width)
            else:
                images = torch.stack([self._image_tensor(r.image) for r in chunk])
            texts = [r.context for r in chunk]
            readings = [None if screen_text_off else screen_reading(r) for r in chunk]
            priors = [propose(self.priors, t, s) for t, s in zip(texts, readings)]
            replies = [reply_to(r, s) if s else "" for r, s in zip(chunk, readings)]
            with torch.inference_mode():
                screen = self.model.encode_screen(images.to(self.device))
                out, nets, layouts = self._keystrokes(screen, texts, replies, priors, [r.user_id for r in chunk],
                                                      [r.prev_layout for r in chunk])
                first = {task: self._first_logits(out, task, layouts) for task in TASKS}
                empty = [i for i, t in enumerate(texts) if is_empty_field(t)] if suggestions else []
                suggested = self._suggest(out, layouts, empty)
            arrays = {key: out[key].float().cpu().numpy() for key in ("global_feat", "text_feat", "expert_probs", "layout_logits")}
            yield NetworkBatch(chunk, nets, priors, first, arrays, suggested, time.perf_counter() - began)

    def predict_batch(self, records: Sequence[Any], batch_size: int = 16, blank_screen: bool = False,
                      screen_text_off: bool = False) -> BatchResult:
        """Predict records (``image, context, prev_layout, user_id``, optionally ``screen_text``) in
        batches, both candidate lists.

        ``blank_screen`` feeds a black screenshot instead (the text-only ablation);
        ``screen_text_off`` ignores the records' screen text. The screen cache is not used;
        ``timing_ms`` is the batch's time shared equally by its records.
        """
        predictions: list[Prediction] = []
        arrays: dict[str, list[np.ndarray]] = {"global_feat": [], "text_feat": [], "expert_probs": [], "layout_logits": []}
        for batch in self.network_batches(records, batch_size, blank_screen, screen_text_off=screen_text_off):
            for i, record in enumerate(batch.records):
                began = time.perf_counter()
                prediction = answer(batch.nets[i], record.context, batch.priors[i],
                                    lambda task, i=i: batch.first_logits[task][i],
                                    lambda i=i: batch.suggestions.get(i), self.fusion, self.num_candidates)
                elapsed = 1000 * (batch.seconds / len(batch.records) + time.perf_counter() - began)
                prediction.timing_ms = {"screen": 0.0, "keystroke": round(elapsed, 2), "total": round(elapsed, 2)}
                predictions.append(prediction)
            for key in arrays:
                arrays[key].append(batch.arrays[key])
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

"""Records -> model tensors: the per-record arrays, the two datasets and ``collate``.

A batch is the screen plus named per-record arrays (``record_arrays``: tokenized context and
target, the labels) plus the ROI boxes in the letterboxed frame. Two datasets give the same
batches, value for value:

- ``KeyPilotDataset`` decodes and letterboxes each screenshot when it is asked for it (the
  path for data sets that change, and the reference the cache is tested against);
- ``keypilot.data.cache.CachedDataset`` reads screens already letterboxed to uint8 from
  memory-mapped arrays written once beside the data set.

The screenshot and context transforms are ``keypilot.preprocess``'s, the ones both
predictors use at inference, so the model sees inputs prepared exactly as in training.

A new per-record input (say a small float vector computed from the context text) is one
more entry of ``record_arrays``: both datasets batch every entry under its name, and the
cache stores it (bump ``keypilot.data.cache.CACHE_VERSION`` so old caches are rebuilt).
Arrays computed elsewhere can be handed to either dataset as ``extra`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from keypilot.data.format import Record
from keypilot.preprocess import context_tokens, field_tokens, letterbox
from keypilot.priors.screen import ScreenReading, read_screen
from keypilot.labels import LAYOUT_INDEX, ROI_KEYS, TASK_INDEX, lang_of
from keypilot.prior_fusion import PRIOR_SLOTS, FirstTokens, feature_row, prior_inputs
from keypilot.tokenizer import KeyPilotTokenizer

IGNORE_INDEX = -100  # target padding, skipped by cross-entropy

__all__ = ["IGNORE_INDEX", "KeyPilotDataset", "collate", "context_ids", "encode_context", "letterbox",
           "letterbox_boxes", "record_arrays", "screen_arrays", "target_ids"]


def letterbox_boxes(
    rois: dict[str, Sequence[float] | None], scale: float, pad: tuple[int, int], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """ROI pixel boxes of the original image -> boxes in the letterboxed frame.

    Returns ``boxes [4, 4]`` float32 (``ROI_KEYS`` order, x0, y0, x1, y1 in [0, 1] of the
    letterboxed image, 0 where absent) and ``valid [4]`` bool.
    """
    boxes = np.zeros((len(ROI_KEYS), 4), dtype=np.float32)
    valid = np.zeros(len(ROI_KEYS), dtype=bool)
    pad_x, pad_y = pad
    for i, key in enumerate(ROI_KEYS):
        box = rois.get(key)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        boxes[i] = [
            (x0 * scale + pad_x) / width,
            (y0 * scale + pad_y) / height,
            (x1 * scale + pad_x) / width,
            (y1 * scale + pad_y) / height,
        ]
        valid[i] = True
    np.clip(boxes, 0.0, 1.0, out=boxes)
    return boxes, valid


def screen_arrays(record: Record, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A record's screenshot letterboxed to ``height x width``: ``image [3, H, W]`` float32 in
    [0, 1], ``roi_boxes [4, 4]`` float32 and ``roi_valid [4]`` bool in that frame."""
    with Image.open(record.image) as im:
        image, scale, pad = letterbox(im, height, width)
    boxes, valid = letterbox_boxes(record.rois, scale, pad, height, width)
    return image, boxes, valid


def context_ids(tokenizer: KeyPilotTokenizer, token_ids: list[int], max_len: int) -> tuple[list[int], list[int]]:
    """``preprocess.context_tokens`` right-padded for batching: (ids, mask), each of length ``max_len``."""
    ids = context_tokens(tokenizer.cls_id, token_ids, max_len)
    pad = max_len - len(ids)
    return ids + [tokenizer.pad_id] * pad, [1] * len(ids) + [0] * pad


def encode_context(tokenizer: KeyPilotTokenizer, text: str, max_len: int,
                   reply_to: str = "") -> tuple[list[int], list[int]]:
    """Model input for a field's text: ``(input_ids, attention_mask)``, each ``max_len`` long
    (``preprocess.field_tokens``: an empty field carries the message it answers)."""
    return context_ids(tokenizer, field_tokens(tokenizer, text, reply_to), max_len)


def screen_reading(record: Record) -> ScreenReading | None:
    """``priors.screen.read_screen`` of a record's ``screen_text`` (None when it has none)."""
    lines = getattr(record, "screen_text", None)
    if not lines:
        return None
    with Image.open(record.image) as im:  # the header only: the size places the lines
        size = im.size
    return read_screen(lines, size)


def reply_to(record: Record, reading: ScreenReading | None = None) -> str:
    """The last incoming message on a record's screen when its field is empty (else ""): what
    the suggestion is conditioned on. Records without ``screen_text`` have none."""
    if record.context.strip():
        return ""
    reading = reading or screen_reading(record)
    return reading.reply_to if reading else ""


def target_ids(tokenizer: KeyPilotTokenizer, token_ids: list[int], max_len: int) -> list[int]:
    """``encode_target`` ids truncated to ``max_len``, then ``eos_id`` if it fits, then -100."""
    ids = list(token_ids[:max_len])
    if len(ids) < max_len:
        ids.append(tokenizer.eos_id)
    return ids + [IGNORE_INDEX] * (max_len - len(ids))


def record_arrays(records: Sequence[Record], tokenizer: KeyPilotTokenizer, max_context_tokens: int,
                  max_target_tokens: int) -> dict[str, np.ndarray]:
    """Everything of a batch but the screen, for all records at once: name -> ``[N, ...]`` array.

    ``input_ids``, ``attention_mask [N, L]``, ``target_tokens [N, T]`` (-100 padding) and the
    labels ``user_id`` (-1 unknown), ``prev_layout``, ``target_task``, ``target_layout``,
    ``target_type [N]``, all int64 (what the batch holds, so a row is copied out as is).
    """
    n = len(records)
    contexts = tokenizer.encode_batch([r.context for r in records])
    targets = tokenizer.encode_targets([r.target for r in records])
    arrays = {
        "input_ids": np.zeros((n, max_context_tokens), dtype=np.int64),
        "attention_mask": np.zeros((n, max_context_tokens), dtype=np.int64),
        "target_tokens": np.zeros((n, max_target_tokens), dtype=np.int64),
    }
    for i, (ctx, tgt) in enumerate(zip(contexts, targets)):
        reply = reply_to(records[i])
        if reply:
            ctx = field_tokens(tokenizer, records[i].context, reply)
        arrays["input_ids"][i], arrays["attention_mask"][i] = context_ids(tokenizer, ctx, max_context_tokens)
        arrays["target_tokens"][i] = target_ids(tokenizer, tgt, max_target_tokens)
    labels = {
        "user_id": [-1 if r.user_id is None else r.user_id for r in records],
        "prev_layout": [LAYOUT_INDEX[r.prev_layout] for r in records],
        "target_task": [TASK_INDEX[r.task] for r in records],
        "target_layout": [LAYOUT_INDEX[r.layout] for r in records],
        "target_type": [LAYOUT_INDEX[r.lang or lang_of(r.target)] for r in records],
    }
    arrays.update({key: np.asarray(values, dtype=np.int64).reshape(n) for key, values in labels.items()})
    return arrays


def check_extra(extra: Mapping[str, np.ndarray] | None, num_records: int, taken: set[str]) -> dict[str, np.ndarray]:
    """Per-record arrays handed in by a caller: one row per record, names not already used."""
    extra = dict(extra or {})
    for name, array in extra.items():
        if name in taken:
            raise ValueError(f"extra per-record array {name!r} would replace the batch's own {name!r}")
        if len(array) != num_records:
            raise ValueError(f"extra per-record array {name!r} has {len(array)} rows for {num_records} records")
    return extra


class KeyPilotDataset(Dataset):
    """Records as model inputs, screenshots decoded and letterboxed per item (in DataLoader
    workers when there are any: the dataset pickles).

    One item is a dict of tensors of a single sample (shapes of ``collate``'s table without
    the batch dimension) plus its ``id``. ``extra``: more named per-record arrays
    (``[N, ...]``) to carry into the batch.
    """

    def __init__(
        self,
        records: Sequence[Record],
        tokenizer: KeyPilotTokenizer,
        image_height: int = 512,
        image_width: int = 256,
        max_context_tokens: int = 64,
        max_target_tokens: int = 5,
        extra: Mapping[str, np.ndarray] | None = None,
    ):
        self.records = list(records)
        self.image_height = image_height
        self.image_width = image_width
        self.arrays = record_arrays(self.records, tokenizer, max_context_tokens, max_target_tokens)
        self.arrays.update(check_extra(extra, len(self.records), set(self.arrays) | {"image", "roi_boxes", "roi_valid"}))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        image, boxes, valid = screen_arrays(self.records[index], self.image_height, self.image_width)
        # Rows are copied out (torch.tensor), so no item shares the arrays' storage.
        item = {key: torch.tensor(array[index]) for key, array in self.arrays.items()}
        item.update(image=torch.from_numpy(image), roi_boxes=torch.from_numpy(boxes), roi_valid=torch.from_numpy(valid))
        item["ids"] = self.records[index].id
        return item


def record_priors(records: Sequence[Record], priors: Any, tokenizer: KeyPilotTokenizer, width: int) -> dict[str, np.ndarray]:
    """Each record's priors as arrays: ``prior_features [N, width]`` float32 (the routers' input),
    ``prior_ids [N, PRIOR_SLOTS]`` int64 and ``prior_q [N, PRIOR_SLOTS]`` float32 (the first
    tokens of the record's task list and their prior mass, fused into the first token)."""
    first = FirstTokens(tokenizer)
    arrays = {"prior_features": np.zeros((len(records), width), dtype=np.float32),
              "prior_ids": np.zeros((len(records), PRIOR_SLOTS), dtype=np.int64),
              "prior_q": np.zeros((len(records), PRIOR_SLOTS), dtype=np.float32)}
    for i, record in enumerate(records):
        proposal = priors.propose(record.context, screen=screen_reading(record))
        arrays["prior_features"][i] = feature_row(proposal, width)
        arrays["prior_ids"][i], arrays["prior_q"][i] = prior_inputs(proposal, record.task, first)
    return arrays


def collate(items: list[dict]) -> dict:
    """Stack items into the batch of ``docs/contracts.md`` ("Batches"):

    ``image [B,3,H,W]`` float32, ``input_ids``/``attention_mask [B,L]`` long, ``user_id``,
    ``prev_layout``, ``target_task``, ``target_layout``, ``target_type [B]`` long,
    ``target_tokens [B,T]`` long (-100 padding), ``roi_boxes [B,4,4]`` float32,
    ``roi_valid [B,4]`` bool and ``ids`` (list of str); plus any extra per-record arrays.
    """
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0] if key != "ids"}
    batch["ids"] = [item["ids"] for item in items]
    return batch

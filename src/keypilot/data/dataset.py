"""Records -> model tensors: the torch ``Dataset``, its ``collate`` and the shared transforms.

The screenshot and context transforms are ``keypilot.preprocess``'s, the ones both
predictors use at inference, so the model sees inputs prepared exactly as in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from keypilot.data.format import Record
from keypilot.preprocess import context_tokens, letterbox
from keypilot.labels import LAYOUT_INDEX, ROI_KEYS, TASK_INDEX, lang_of
from keypilot.prior_fusion import PRIOR_SLOTS, FirstTokens, feature_row, prior_inputs
from keypilot.tokenizer import KeyPilotTokenizer

IGNORE_INDEX = -100  # target padding, skipped by cross-entropy


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


def context_ids(tokenizer: KeyPilotTokenizer, token_ids: list[int], max_len: int) -> tuple[list[int], list[int]]:
    """``preprocess.context_tokens`` right-padded for batching: (ids, mask), each of length ``max_len``."""
    ids = context_tokens(tokenizer.cls_id, token_ids, max_len)
    pad = max_len - len(ids)
    return ids + [tokenizer.pad_id] * pad, [1] * len(ids) + [0] * pad


def encode_context(tokenizer: KeyPilotTokenizer, text: str, max_len: int) -> tuple[list[int], list[int]]:
    """Model input for a field's text: ``(input_ids, attention_mask)``, each ``max_len`` long."""
    return context_ids(tokenizer, tokenizer.encode(text), max_len)


def target_ids(tokenizer: KeyPilotTokenizer, token_ids: list[int], max_len: int) -> list[int]:
    """``encode_target`` ids truncated to ``max_len``, then ``eos_id`` if it fits, then -100."""
    ids = list(token_ids[:max_len])
    if len(ids) < max_len:
        ids.append(tokenizer.eos_id)
    return ids + [IGNORE_INDEX] * (max_len - len(ids))


class KeyPilotDataset(Dataset):
    """Records as model inputs. Texts are tokenized once up front; screenshots are read and
    letterboxed per item (in DataLoader workers: the dataset pickles).

    One item is a dict of tensors of a single sample (shapes of ``collate``'s table without
    the batch dimension) plus its ``id``.
    """

    def __init__(
        self,
        records: Sequence[Record],
        tokenizer: KeyPilotTokenizer,
        image_height: int = 512,
        image_width: int = 256,
        max_context_tokens: int = 64,
        max_target_tokens: int = 5,
        priors: Any = None,
        prior_features: int = 0,
    ):
        self.records = list(records)
        self.tokenizer = tokenizer
        self.image_height = image_height
        self.image_width = image_width
        self.max_context_tokens = max_context_tokens
        self.max_target_tokens = max_target_tokens
        contexts = tokenizer.encode_batch([r.context for r in self.records])
        targets = tokenizer.encode_targets([r.target for r in self.records])
        # Rows are copied out per item (torch.tensor), so no item shares these arrays' storage.
        self._input_ids = np.zeros((len(self.records), max_context_tokens), dtype=np.int64)
        self._attention = np.zeros((len(self.records), max_context_tokens), dtype=np.int64)
        self._targets = np.zeros((len(self.records), max_target_tokens), dtype=np.int64)
        for i, (ctx, tgt) in enumerate(zip(contexts, targets)):
            self._input_ids[i], self._attention[i] = context_ids(tokenizer, ctx, max_context_tokens)
            self._targets[i] = target_ids(tokenizer, tgt, max_target_tokens)
        # The field's priors, per record: what the routers read and what the first token is fused with.
        self._priors: dict[str, np.ndarray] = {}
        if priors is not None and prior_features:
            self._priors = record_priors(self.records, priors, tokenizer, prior_features)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        with Image.open(record.image) as im:
            image, scale, pad = letterbox(im, self.image_height, self.image_width)
        boxes, valid = letterbox_boxes(record.rois, scale, pad, self.image_height, self.image_width)
        return {
            "image": torch.from_numpy(image),  # [3, H, W]
            "input_ids": torch.tensor(self._input_ids[index]),  # [L]
            "attention_mask": torch.tensor(self._attention[index]),  # [L]
            "user_id": torch.tensor(-1 if record.user_id is None else record.user_id, dtype=torch.long),
            "prev_layout": torch.tensor(LAYOUT_INDEX[record.prev_layout], dtype=torch.long),
            "target_task": torch.tensor(TASK_INDEX[record.task], dtype=torch.long),
            "target_layout": torch.tensor(LAYOUT_INDEX[record.layout], dtype=torch.long),
            "target_type": torch.tensor(LAYOUT_INDEX[record.lang or lang_of(record.target)], dtype=torch.long),
            "target_tokens": torch.tensor(self._targets[index]),  # [T]
            "roi_boxes": torch.from_numpy(boxes),  # [4, 4]
            "roi_valid": torch.from_numpy(valid),  # [4]
            **{key: torch.from_numpy(array[index]) for key, array in self._priors.items()},
            "ids": record.id,
        }


def record_priors(records: Sequence[Record], priors: Any, tokenizer: KeyPilotTokenizer, width: int) -> dict[str, np.ndarray]:
    """Each record's priors as arrays: ``prior_features [N, width]`` float32 (the routers' input),
    ``prior_ids [N, PRIOR_SLOTS]`` int64 and ``prior_q [N, PRIOR_SLOTS]`` float32 (the first
    tokens of the record's task list and their prior mass, fused into the first token)."""
    first = FirstTokens(tokenizer)
    arrays = {"prior_features": np.zeros((len(records), width), dtype=np.float32),
              "prior_ids": np.zeros((len(records), PRIOR_SLOTS), dtype=np.int64),
              "prior_q": np.zeros((len(records), PRIOR_SLOTS), dtype=np.float32)}
    for i, record in enumerate(records):
        proposal = priors.propose(record.context)
        arrays["prior_features"][i] = feature_row(proposal, width)
        arrays["prior_ids"][i], arrays["prior_q"][i] = prior_inputs(proposal, record.task, first)
    return arrays


def collate(items: list[dict]) -> dict:
    """Stack items into the batch of ``docs/contracts.md`` ("Batches"):

    ``image [B,3,H,W]`` float32, ``input_ids``/``attention_mask [B,L]`` long, ``user_id``,
    ``prev_layout``, ``target_task``, ``target_layout``, ``target_type [B]`` long,
    ``target_tokens [B,T]`` long (-100 padding), ``roi_boxes [B,4,4]`` float32,
    ``roi_valid [B,4]`` bool, with priors ``prior_features [B,F]``, ``prior_ids``/``prior_q [B,32]``,
    and ``ids`` (list of str).
    """
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0] if key != "ids"}
    batch["ids"] = [item["ids"] for item in items]
    return batch

"""Records -> batches: shapes, dtypes, padding, context truncation, letterbox geometry."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from keypilot.data.dataset import KeyPilotDataset, collate, encode_context, letterbox, letterbox_boxes
from keypilot.data.format import Record
from keypilot.labels import LAYOUT_INDEX, ROI_KEYS, TASK_INDEX
from keypilot.tokenizer import KeyPilotTokenizer, build_tokenizer

H, W, L, T = 64, 32, 8, 5


@pytest.fixture(scope="module")
def tok() -> KeyPilotTokenizer:
    return build_tokenizer(["see you tomorrow", "我们明天见"] * 5)


@pytest.fixture()
def records(tmp_path: Path) -> list[Record]:
    # 100 x 400 screen (aspect 1:4, narrower than the 1:2 frame): scale 64/400 = 0.16,
    # 16 x 64 after resize, centred with 8 px bars left and right.
    image = Image.new("RGB", (100, 400), (0, 0, 0))
    image.paste((255, 0, 0), (20, 100, 60, 300))  # a red rectangle: x 20..60, y 100..300
    image.save(tmp_path / "tall.png")
    Image.new("RGB", (200, 200), (255, 255, 255)).save(tmp_path / "square.png")
    return [
        Record(id="a", image=tmp_path / "tall.png", context="see you tomo", task="auto_completion", target="tomorrow",
               layout="EN", lang="EN", user_id=7, rois={"input_field": [20, 100, 60, 300], "chat_bubble": None,
                                                        "keyboard": None, "title_bar": [0, 0, 100, 40]}),
        Record(id="b", image=tmp_path / "square.png", context="", task="suggestion", target="Sounds good, see you then!",
               layout="NUM", prev_layout="ZH", lang=None),
    ]


def test_letterbox_geometry() -> None:
    image = Image.new("RGB", (100, 400), (0, 0, 0))
    image.paste((255, 0, 0), (20, 100, 60, 300))
    array, scale, (pad_x, pad_y) = letterbox(image, H, W)
    assert array.shape == (3, H, W) and array.dtype == np.float32
    assert scale == pytest.approx(0.16) and (pad_x, pad_y) == (8, 0)
    # The red rectangle maps to x 8+3.2..8+9.6, y 16..48: check well inside and outside it.
    assert array[0, 20:44, 13:16].min() > 0.9 and array[1, 20:44, 13:16].max() < 0.1
    assert array[:, :, :8].max() == 0.0 and array[:, :, 24:].max() == 0.0  # black bars
    boxes, valid = letterbox_boxes({"input_field": [20, 100, 60, 300]}, scale, (pad_x, pad_y), H, W)
    assert valid.tolist() == [True, False, False, False]
    np.testing.assert_allclose(boxes[0], [(8 + 3.2) / W, 16 / H, (8 + 9.6) / W, 48 / H], rtol=1e-6)
    assert not boxes[1:].any()

    wide = Image.new("RGB", (256, 64), (255, 255, 255))  # bars top and bottom
    array, scale, (pad_x, pad_y) = letterbox(wide, H, W)
    assert scale == pytest.approx(0.125) and (pad_x, pad_y) == (0, 28)
    assert array[:, 28:36].min() == 1.0 and array[:, :28].max() == 0.0 and array[:, 36:].max() == 0.0


def test_encode_context_keeps_the_end(tok: KeyPilotTokenizer) -> None:
    text = " ".join(["see"] * 20) + " you tomorrow"
    ids, mask = encode_context(tok, text, L)
    tokens = tok.encode(text)
    assert ids == [tok.cls_id] + tokens[-(L - 1):] and mask == [1] * L
    ids, mask = encode_context(tok, "see", L)
    assert ids == [tok.cls_id] + tok.encode("see") + [tok.pad_id] * (L - 1 - len(tok.encode("see")))
    assert mask == [1] * (1 + len(tok.encode("see"))) + [0] * (L - 1 - len(tok.encode("see")))
    assert encode_context(tok, "", L) == ([tok.cls_id] + [tok.pad_id] * (L - 1), [1] + [0] * (L - 1))


def test_an_empty_field_carries_the_message_it_answers(tok: KeyPilotTokenizer, records: list[Record],
                                                       tmp_path: Path) -> None:
    from dataclasses import replace

    from keypilot.data.dataset import record_arrays, reply_to
    from keypilot.screen_text import ScreenText

    chat = [ScreenText("Are you coming tonight?", (20, 400, 300, 430)), ScreenText("Message", (20, 900, 150, 930))]
    Image.new("RGB", (720, 1280)).save(tmp_path / "phone.png")
    empty = replace(records[1], image=tmp_path / "phone.png", screen_text=chat)
    typing = replace(records[0], image=tmp_path / "phone.png", screen_text=chat)
    assert reply_to(empty) == "Are you coming tonight?" and reply_to(typing) == "" and reply_to(records[1]) == ""
    arrays = record_arrays([empty, records[1]], tok, L, 8)
    message = tok.encode("Are you coming tonight?")
    assert list(arrays["input_ids"][0][: len(message) + 2]) == [tok.cls_id, *message, tok.sep_id]
    assert list(arrays["input_ids"][1]) == encode_context(tok, "", L)[0]  # no screen text: as before
    assert encode_context(tok, "", L, "Are you coming tonight?")[0] == list(arrays["input_ids"][0])


def test_items_and_batch(tok: KeyPilotTokenizer, records: list[Record]) -> None:
    ds = KeyPilotDataset(records, tok, image_height=H, image_width=W, max_context_tokens=L, max_target_tokens=T)
    loader = DataLoader(pickle.loads(pickle.dumps(ds)), batch_size=2, collate_fn=collate, num_workers=0)
    batch = next(iter(loader))
    expected = {
        "image": ((2, 3, H, W), torch.float32),
        "input_ids": ((2, L), torch.long),
        "attention_mask": ((2, L), torch.long),
        "user_id": ((2,), torch.long),
        "prev_layout": ((2,), torch.long),
        "target_task": ((2,), torch.long),
        "target_layout": ((2,), torch.long),
        "target_type": ((2,), torch.long),
        "target_tokens": ((2, T), torch.long),
        "roi_boxes": ((2, len(ROI_KEYS), 4), torch.float32),
        "roi_valid": ((2, len(ROI_KEYS)), torch.bool),
    }
    assert set(batch) == set(expected) | {"ids"}
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape and batch[key].dtype == dtype, key
    assert batch["ids"] == ["a", "b"]
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["user_id"].tolist() == [7, -1]
    assert batch["prev_layout"].tolist() == [LAYOUT_INDEX["EN"], LAYOUT_INDEX["ZH"]]
    assert batch["target_task"].tolist() == [TASK_INDEX["auto_completion"], TASK_INDEX["suggestion"]]
    assert batch["target_layout"].tolist() == [LAYOUT_INDEX["EN"], LAYOUT_INDEX["NUM"]]
    assert batch["target_type"].tolist() == [LAYOUT_INDEX["EN"], LAYOUT_INDEX["EN"]]  # lang=None -> lang_of(target)

    # "tomorrow" is one token, then <eos>, then -100 padding; a long suggestion fills all T.
    assert batch["target_tokens"][0].tolist() == tok.encode_target("tomorrow") + [tok.eos_id] + [-100] * (T - 2)
    assert batch["target_tokens"][1].tolist() == tok.encode_target("Sounds good, see you then!")[:T]
    assert batch["input_ids"][1].tolist() == [tok.cls_id] + [tok.pad_id] * (L - 1)
    assert batch["attention_mask"][1].tolist() == [1] + [0] * (L - 1)

    assert batch["roi_valid"][0].tolist() == [True, False, False, True]
    np.testing.assert_allclose(batch["roi_boxes"][0, 0].numpy(), [11.2 / W, 16 / H, 17.6 / W, 48 / H], rtol=1e-6)
    np.testing.assert_allclose(batch["roi_boxes"][0, 3].numpy(), [8 / W, 0, 24 / W, 6.4 / H], rtol=1e-6)
    assert not batch["roi_valid"][1].any() and not batch["roi_boxes"][1].any()

"""Contact sheets of a data set folder or a single .jsonl file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from keypilot.data.generate import generate_dataset
from keypilot.data.preview import make_contact_sheet


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prev")
    generate_dataset(out, 30, seed=2, workers=1, progress=False)
    return out


def test_sheet_of_a_folder(data: Path, tmp_path: Path) -> None:
    out = make_contact_sheet(data, tmp_path / "sheet.png", num=12, seed=0)
    with Image.open(out) as img:
        assert img.width >= 600 and img.height >= 400
        assert img.getextrema() != ((250, 250), (250, 250), (250, 250))


def test_sheet_of_one_jsonl(data: Path, tmp_path: Path) -> None:
    out = make_contact_sheet(data / "train.jsonl", tmp_path / "one.png", num=4)
    assert Image.open(out).width > 0


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make_contact_sheet(tmp_path / "nope", tmp_path / "x.png")

"""Label orders and the language of a text."""

from __future__ import annotations

import pytest

from keypilot.labels import EXPERTS, LAYOUT_TO_EXPERT, LAYOUTS, TASKS, EXPERT_TO_LAYOUT, lang_of


def test_orders_are_the_documented_ones():
    assert TASKS == ("error_correction", "auto_completion", "suggestion")
    assert LAYOUTS == ("EN", "ZH", "SYM", "EMOJI", "NUM")
    assert EXPERTS == ("EN", "ZH", "SYM", "NUM", "EMOJI")


def test_layout_expert_maps_are_inverse_and_keep_the_language():
    for layout_id, expert_id in enumerate(LAYOUT_TO_EXPERT):
        assert EXPERTS[expert_id] == LAYOUTS[layout_id]
        assert EXPERT_TO_LAYOUT[expert_id] == layout_id


@pytest.mark.parametrize(
    "text, lang",
    [
        ("tomorrow", "EN"), ("See you tomo", "EN"), ("小心", "ZH"), ("我们明天jian", "ZH"),
        ("482913", "NUM"), ("$12.50", "NUM"), ("１２３", "NUM"), ("😂", "EMOJI"), ("👨‍👩‍👧 🇨🇳", "EMOJI"),
        ("❤️", "EMOJI"), ("@", "SYM"), ("，。", "SYM"), ("?!", "SYM"), ("name@mail.com", "EN"), ("", "EN"),
        ("Ok 👍", "EN"), ("好的👍", "ZH"),
    ],
)
def test_lang_of(text, lang):
    assert lang_of(text) == lang

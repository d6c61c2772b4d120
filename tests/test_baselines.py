"""Baselines on small hand-made examples."""

from __future__ import annotations

from types import SimpleNamespace

from keypilot.evaluation.baselines import (KeepLayoutBaseline, NgramBaseline, SymSpellBaseline, TextRuleBaseline,
                                           completion_base, correction_base, split_context)


def rec(task: str, context: str, target: str, prev: str = "EN") -> SimpleNamespace:
    return SimpleNamespace(task=task, context=context, target=target, prev_layout=prev, layout=prev)


def test_split_context() -> None:
    assert split_context("See you tomo") == ("See you ", "tomo")
    assert split_context("See you ") == ("See you ", "")
    assert split_context("我们明天jian") == ("我们明天", "jian")
    assert split_context("") == ("", "")


def test_replacement_spans() -> None:
    assert correction_base("Thanks so amuch", "much") == "Thanks so "
    assert correction_base("这家火锅真的狠", "很") == "这家火锅真的"  # same length as the correction
    assert completion_base("Finally tri", "tried") == "Finally "
    assert completion_base("zhej", "这家") == ""  # a pinyin buffer at the start of the field
    assert completion_base("Lee700", "?") == "Lee700"  # a next symbol is appended


def test_symspell_corrects_teh() -> None:
    speller = SymSpellBaseline()
    out = speller.predict(rec("error_correction", "I saw teh", "the"))
    assert out.corrections[0] == "the" and len(out.corrections) == 5
    assert speller.correct("Teh")[0] == "The"  # the user's capital is kept
    assert speller.correct("你好") == []


def test_ngram_completes_seen_prefix_and_pinyin() -> None:
    ngram = NgramBaseline()
    ngram.fit([
        rec("auto_completion", "see you tomo", "tomorrow"),
        rec("auto_completion", "see you ", "soon"),
        rec("auto_completion", "我们明天jian", "见面", prev="ZH"),
        rec("suggestion", "", "Sounds good!"),
    ])
    assert ngram.complete("See you tomo")[0] == "tomorrow"
    assert set(ngram.complete("see you ")[:2]) == {"soon", "tomorrow"}
    assert ngram.complete("我们明天ji")[0] == "见面"
    assert ngram.complete("jianm")[0] == "见面"  # pinyin at the start of the field
    assert ngram.predict(rec("suggestion", "", "?")).suggestion == "Sounds good!"


def test_layout_baselines() -> None:
    assert KeepLayoutBaseline().predict(rec("auto_completion", "abc", "abc", prev="ZH")).layout == "ZH"
    rule = TextRuleBaseline()
    assert rule.layout("我们明天jian", "EN") == "ZH"
    assert rule.layout("call 555", "EN") == "NUM"
    assert rule.layout("", "SYM") == "SYM"
    assert rule.task("") == "suggestion"
    assert rule.task("see you tomorow ") == "error_correction"
    assert rule.task("see you tomo") == "auto_completion"

"""OnnxPredictor: same answers as the torch Predictor, a screen cache that re-encodes only
changed screens, preprocessing identical to training, and no torch on its import path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import build_test_priors
from PIL import Image
from test_export import make_tiny_export

from keypilot.data.format import read_records
from keypilot.inference.onnx_predictor import OnnxPredictor
from keypilot.inference.postprocess import language_bias
from keypilot.labels import LAYOUTS
from keypilot.preprocess import context_ids


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tiny_export(tmp_path_factory.getbasetemp() / "onnx-tiny")


@pytest.fixture(scope="module")
def onnx_predictor(tiny_export: tuple[Path, Path, Path]) -> OnnxPredictor:
    return OnnxPredictor.from_pretrained(tiny_export[2])


def _records(data: Path, num: int = 6) -> list:
    return list(read_records(data, skip_bad=True, check_images=False))[:num]


def _without_timing(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("timing_ms", "screen_cached")}


def test_matches_torch_predictor(tiny_export: tuple[Path, Path, Path], onnx_predictor: OnnxPredictor) -> None:
    from keypilot.inference.predictor import Predictor

    run, data, _ = tiny_export
    torch_predictor = Predictor.from_pretrained(run)
    records = _records(data)
    records.append(records[0])  # an empty field: the suggestion path
    texts = [r.context for r in records[:-1]] + [""]
    cases = [(record, text, True) for record, text in zip(records, texts, strict=True)]
    cases += [(record, text, False) for record, text in zip(records[:3], texts[:3], strict=True)]  # strip only
    for record, text, full in cases:
        kwargs = {"prev_layout": record.prev_layout, "user_id": record.user_id, "full": full}
        want = torch_predictor.predict(record.image, text, **kwargs).to_dict()
        got = onnx_predictor.predict(record.image, text, **kwargs).to_dict()
        assert set(got) == set(want)
        for key in ("task", "layout", "layout_raw", "shown"):
            assert got[key] == want[key], (key, text)
        for key in ("corrections", "completions"):
            assert [c["text"] for c in got[key]] == [c["text"] for c in want[key]], (key, text)
            np.testing.assert_allclose([c["prob"] for c in got[key]], [c["prob"] for c in want[key]], rtol=1e-3, atol=1e-6)
        assert (got["suggestion"] or {}).get("text") == (want["suggestion"] or {}).get("text")
        for key in ("task_probs", "layout_probs", "expert_probs"):
            np.testing.assert_allclose(list(got[key].values()), list(want[key].values()), atol=1e-5)


def test_pinned_layout_is_followed(tiny_export: tuple[Path, Path, Path], onnx_predictor: OnnxPredictor) -> None:
    record = _records(tiny_export[1], 1)[0]
    result = onnx_predictor.predict(record.image, "see you", layout="NUM")
    assert result.layout == "NUM"
    assert all(c.text.replace(" ", "").isdigit() or not c.text for c in result.completions)


def test_a_sure_pinyin_buffer_shows_the_chinese_layout(tiny_export: tuple[Path, Path, Path]) -> None:
    from keypilot.priors import Priors

    onnx_predictor = OnnxPredictor.from_pretrained(tiny_export[2])
    onnx_predictor.priors = Priors.load(build_test_priors(tiny_export[1]))
    record = _records(tiny_export[1], 1)[0]
    assert onnx_predictor.predict(record.image, "我们明天jian", prev_layout="EN").layout == "ZH"
    assert onnx_predictor.predict(record.image, "我们明天jian", prev_layout="EN", layout="EN").layout == "EN"


def test_screen_cache_encodes_each_screen_once(tiny_export: tuple[Path, Path, Path]) -> None:
    predictor = OnnxPredictor.from_pretrained(tiny_export[2])
    with Image.open(_records(tiny_export[1], 1)[0].image) as opened:
        screen = opened.convert("RGB")
    first = predictor.predict(screen, "hel")
    second = predictor.predict(screen.copy(), "hell")  # same pixels, another object
    assert (first.screen_cached, second.screen_cached, predictor.encoder_runs) == (False, True, 1)
    changed = screen.copy()
    changed.putpixel((0, 0), (255, 0, 0))
    assert not predictor.predict(changed, "hello").screen_cached
    assert predictor.encoder_runs == 2
    assert predictor.predict(screen, "hello").screen_cached  # the first screen is still cached
    assert predictor.encoder_runs == 2


def test_int8_predictor_answers(tiny_export: tuple[Path, Path, Path]) -> None:
    predictor = OnnxPredictor.from_pretrained(tiny_export[2], int8=True)
    record = _records(tiny_export[1], 1)[0]
    result = predictor.predict(record.image, record.context, prev_layout=record.prev_layout).to_dict()
    assert np.isclose(sum(result["layout_probs"].values()), 1.0, atol=1e-4)
    assert all(0.0 <= c["prob"] <= 1.0 for c in result["completions"])


def test_context_ids_match_the_training_padding(onnx_predictor: OnnxPredictor) -> None:
    """The torch-free context ids are the training batch's ids without the padding."""
    from keypilot.data.dataset import encode_context

    tokenizer = onnx_predictor.tokenizer
    for text in ("", "see you tomorrow", "我们明天见 " * 20):
        ids, mask = encode_context(tokenizer, text, 32)
        assert context_ids(tokenizer, text, 32).tolist() == [i for i, m in zip(ids, mask) if m]


def test_language_bias_is_the_predictor_rule(onnx_predictor: OnnxPredictor) -> None:
    import torch

    from keypilot.inference.predictor import LanguageMasks

    tokenizer = onnx_predictor.tokenizer
    masks = LanguageMasks(tokenizer, onnx_predictor.vocab_size, torch.device("cpu"))
    biases = language_bias(tokenizer, onnx_predictor.vocab_size, tokenizer.eos_id)
    assert set(biases) == {(layout, kind) for layout in LAYOUTS for kind in ("word", "phrase", "first")}
    for (layout, kind), bias in biases.items():
        # the torch predictor: first_token_mask = the word mask, without eos; eos added otherwise
        want = masks.allowed(layout, kind == "phrase").numpy().copy()
        want[tokenizer.eos_id] = kind != "first"
        np.testing.assert_array_equal(np.isfinite(bias), want, err_msg=f"{layout} {kind}")


def test_no_torch_on_the_onnx_path(tiny_export: tuple[Path, Path, Path]) -> None:
    _, data, export = tiny_export
    image = str(_records(data, 1)[0].image)
    script = textwrap.dedent(f"""
        import json, sys
        from keypilot.inference.onnx_predictor import OnnxPredictor
        from keypilot import OnnxPredictor as Public
        result = OnnxPredictor.from_pretrained({str(export)!r}, int8=True).predict({image!r}, "see you tom")
        print(json.dumps({{"torch": "torch" in sys.modules, "same_class": Public is OnnxPredictor,
                          "layout": result.to_dict()["layout"]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"torch": False, "same_class": True, "layout": report["layout"]}


def test_bench_worker_measures_its_own_process(tiny_export: tuple[Path, Path, Path]) -> None:
    from keypilot.inference.bench import STAGES, format_table, run_worker, summarize

    _, data, export = tiny_export
    screens = sorted({r.image for r in _records(data, 4)})[:2]
    raw = run_worker("onnx-int8", export, screens, threads=1, repeats=1)
    assert raw["torch_imported"] is False
    assert 0 < raw["peak_rss_mb"] < 1000  # the worker's own, not this torch-holding process's
    figures = summarize(raw, files_mb=1.0, params=123)
    # a run without priors spends no measurable time in them
    assert all(figures[f"{stage}_ms_p50"] > 0 for stage in STAGES if stage != "priors") and figures["priors_ms_p50"] >= 0
    assert "onnx-int8" in format_table([figures], "test machine")


def test_token_table_reads_the_rows_it_was_given(tmp_path: Path) -> None:
    from keypilot.inference.quantize import graph_files
    from keypilot.inference.token_table import TokenTable, save_table

    table = np.random.default_rng(0).normal(size=(50, 12)).astype(np.float32)
    table[7] = 0.0  # an all-zero row must survive quantization
    ids = np.asarray([[3, 7, 49, 3]])
    for int8, name in ((False, "g.onnx"), (True, "g.int8.onnx")):
        graph = tmp_path / name
        graph.write_bytes(b"")
        written = save_table(table, graph, int8=int8)
        assert set(written) <= set(graph_files(graph))  # copied and counted with the graph
        rows = TokenTable.beside(graph).rows(ids)
        assert rows.shape == (1, 4, 12) and rows.dtype == np.float32
        # float32 exactly; int8 within half a step of each row's scale
        tolerance = 0 if not int8 else (np.abs(table[ids[0]]).max(axis=1, keepdims=True) / 127 / 2 + 1e-7)
        assert np.all(np.abs(rows[0] - table[ids[0]]) <= tolerance)
        with pytest.raises(IndexError, match="outside the table"):
            TokenTable.beside(graph).rows(np.asarray([50]))
    assert TokenTable.beside(tmp_path / "none.onnx") is None


def test_export_without_its_token_table_is_a_clear_error(tiny_export: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    export = tmp_path / "export"
    shutil.copytree(tiny_export[2], export)
    (export / "keystroke.int8.tokens.npy").unlink()
    with pytest.raises(FileNotFoundError, match="token table"):
        OnnxPredictor.from_pretrained(export, int8=True)


def test_shared_table_export_keeps_one_vocabulary_table(tmp_path_factory: pytest.TempPathFactory) -> None:
    from keypilot.inference.parity import parity_report
    from keypilot.inference.predictor import load_model
    from keypilot.models.keypilot_model import KeyPilotModel

    run, data, export = make_tiny_export(tmp_path_factory.getbasetemp() / "onnx-tiny-shared", shared_embedding=True)
    spec = json.loads((export / "manifest.json").read_text(encoding="utf-8"))["int8_graphs"]["keystroke"]["token_table"]
    assert spec["file"] == "decode_head.int8.onnx.data" and not (export / "keystroke.int8.tokens.npy").exists()
    fp32 = parity_report(load_model(run), export, data, int8=False, num=2)["fp32"]  # the projection is in the graph
    assert fp32["top5_agreement"] == fp32["layout_agreement"] == 1.0
    predictor = OnnxPredictor.from_pretrained(export, int8=True)
    table = KeyPilotModel.from_pretrained(run).decoder.token_emb.weight.detach().numpy()
    ids = np.asarray([[0, 5, 17, len(table) - 1]])
    rows = predictor.token_table.rows(ids)
    assert rows.shape == (1, 4, table.shape[1])
    assert np.abs(rows[0] - table[ids[0]]).max() <= spec["scale"] / 2 + 1e-6  # within half an int8 step
    with pytest.raises(IndexError, match="outside the table"):
        predictor.token_table.rows(np.asarray([len(table)]))
    # the head reads the same matrix: the embeddings it returns for its best tokens are those rows
    z = np.random.default_rng(0).normal(size=(1, table.shape[1])).astype(np.float32)
    _, top_index, top_emb, _ = predictor.sessions["decode_head"].run(
        None, {"z": z, "token_bias": np.zeros((1, len(table)), np.float32), "beam_scores": np.zeros(1, np.float32)})
    np.testing.assert_allclose(top_emb, predictor.token_table.rows(top_index % len(table)), rtol=0, atol=1e-6)
    record = _records(data, 1)[0]
    assert predictor.predict(record.image, record.context).layout in LAYOUTS
    data_file = export / spec["file"]
    data_file.write_bytes(data_file.read_bytes()[:1000])
    with pytest.raises(FileNotFoundError, match="token table"):
        OnnxPredictor.from_pretrained(export, int8=True)

"""The ``keypilot`` command's one error path: a user's mistake is one line naming the command
and what to do, with a non-zero exit; inputs are checked before a model loads; a failed command
leaves nothing behind; a closed pipe is silent; ``--version``, defaults in ``--help``, configs
found by name from any directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, data_copy, make_tiny_run, shared_data, write_config

from keypilot import __version__
from keypilot.cli import main
from keypilot.cli_support import EXIT_BROKEN_PIPE


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_run(tmp_path_factory.getbasetemp() / "serve-tiny")


def run_cli(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, command: str) -> str:
    """The error output is exactly one line, starting with the command's name."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"keypilot {command}: "), err
    assert "Traceback" not in err
    return lines[0]


def python(code: str, cwd: Path = ROOT, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, **popen)


def test_bad_image_is_one_line_before_the_model_or_torch_loads(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = tiny_run
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping: milk, eggs\n", encoding="utf-8")
    # A fresh interpreter: torch not imported at all means no model was loaded.
    result = python(f"""
        import json, sys
        from keypilot.cli import main
        codes = [main(["predict", "--run", {str(run)!r}, "--image", {str(tmp_path / 'nope.png')!r}]),
                 main(["predict", "--run", {str(run)!r}, "--image", {str(notes)!r}]),
                 main(["predict", "--run", {str(tmp_path / 'no-run')!r}, "--image", {str(notes)!r}])]
        print(json.dumps({{"codes": codes, "torch": "torch" in sys.modules}}))
    """)
    report = json.loads(result.stdout)
    assert report == {"codes": [1, 1, 1], "torch": False}, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"keypilot predict: {tmp_path / 'nope.png'}: no such file",
        f"keypilot predict: {notes}: not an image in an accepted format (PNG, JPEG, WEBP)",
        f"keypilot predict: {tmp_path / 'no-run'}: no such run folder (train one with `keypilot train --out {tmp_path / 'no-run'}`)",
    ]


def test_run_folder_missing_a_file_is_named(tiny_run: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    run, data = tiny_run
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run / "config.yaml", partial / "config.yaml")
    image = next((data / "images").iterdir())
    code, _, err = run_cli(capsys, "predict", "--run", partial, "--image", image)
    assert code == 1
    assert one_line(err, "predict") == f"keypilot predict: {partial} is not a trained run folder: model.safetensors, tokenizer.json missing"
    code, _, err = run_cli(capsys, "serve", "--run", partial)
    assert code == 1 and "is not a trained run folder" in one_line(err, "serve")
    code, _, err = run_cli(capsys, "serve", "--run", run, "--backend", "onnx")
    assert code == 1 and f"run `keypilot export --run {run}" in one_line(err, "serve")
    code, _, err = run_cli(capsys, "evaluate", "--run", run, "--data", tmp_path / "none.jsonl", "--out", tmp_path / "eval")
    assert code == 1 and one_line(err, "evaluate") == f"keypilot evaluate: {tmp_path / 'none.jsonl'}: no such data file or folder"
    assert not (tmp_path / "eval").exists()


def test_predict_answers_and_a_closed_pipe_is_silent(tiny_run: tuple[Path, Path], capsys) -> None:
    run, data = tiny_run
    image = sorted((data / "images").iterdir())[0]
    code, out, err = run_cli(capsys, "predict", "--run", run, "--image", image, "--text", "hel", "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["layout"] in ("EN", "ZH", "SYM", "EMOJI", "NUM")

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "keypilot", "predict", "--run", str(run), "--image", str(image), "--text", "hel"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        process.stdout.close()  # `| head -0`: the reader is gone before anything is written
        err_bytes = process.stderr.read()
        code = process.wait(timeout=120)
    assert err_bytes == b"" and code == EXIT_BROKEN_PIPE


def test_failed_export_leaves_no_output_folder(tiny_run: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    run, _ = tiny_run
    broken = tmp_path / "broken-run"
    shutil.copytree(run, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    out = tmp_path / "exports" / "export"
    code, _, err = run_cli(capsys, "export", "--run", broken, "--out", out)
    assert code == 1
    one_line(err, "export")
    assert not (tmp_path / "exports").exists()  # neither the folder nor its parent stays behind
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "keep.txt").write_text("the user's", encoding="utf-8")
    assert run_cli(capsys, "export", "--run", broken, "--out", existing)[0] == 1
    assert (existing / "keep.txt").read_text(encoding="utf-8") == "the user's"  # a folder that existed is not touched


def test_failed_train_leaves_no_run_folder(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys) -> None:
    data = data_copy(shared_data(tmp_path_factory), tmp_path / "data", tokenizer=True, extra_train_line='{"id": "broken"}')
    run = tmp_path / "runs" / "first"
    code, _, err = run_cli(capsys, "train", "--config", write_config(tmp_path), "--data", data, "--out", run, "--device", "cpu")
    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith(f"keypilot train: {data / 'train.jsonl'}:") and "missing required field(s)" in first
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_tokenizer_on_an_empty_file_fails_and_writes_nothing(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    code, _, err = run_cli(capsys, "tokenizer", "train", "--data", empty, "--out", tmp_path / "tok" / "tokenizer.json")
    assert code == 1
    assert one_line(err, "tokenizer train") == (f"keypilot tokenizer train: {empty}: no valid record to learn from "
                                                f"(`keypilot data check {empty}` says why)")
    assert not (tmp_path / "tok").exists()


def test_config_mistakes_are_one_line_naming_the_key(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  mixed_precision: fp8\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "info", "--config", bad)
    assert code == 1
    assert one_line(err, "info") == f"keypilot info: {bad}: training.mixed_precision: expected one of auto, bf16, fp16, fp32, got 'fp8'"
    code, _, err = run_cli(capsys, "train", "--config", bad, "--data", tmp_path, "--out", tmp_path / "run")
    assert code == 1 and "training.mixed_precision" in one_line(err, "train")
    assert not (tmp_path / "run").exists()
    code, _, err = run_cli(capsys, "info", "--config", "tinny")
    assert one_line(err, "info") == "keypilot info: no config file 'tinny'; give a YAML file or a shipped name: keypilot, keypilot-v1, tiny, tiny-v1"
    code, _, err = run_cli(capsys, "train", "--config", "tiny", "--data", tmp_path, "--out", tmp_path / "run")
    assert code == 1 and one_line(err, "train").endswith("no train.jsonl there (make a data set with "
                                                        f"`keypilot data generate --out {tmp_path}`)")


@pytest.mark.parametrize("shared", [False, True])
def test_info_components_add_up_to_the_total(shared: bool) -> None:
    from keypilot.config import load_config
    from keypilot.info import component_counts
    from keypilot.models.keypilot_model import KeyPilotModel

    config = load_config(ROOT / "configs" / "tiny.yaml")
    config["model"]["text_encoder"]["shared_embedding"] = shared
    rows = {name.strip(): n for name, n, _ in component_counts(KeyPilotModel.from_config(config))}
    assert rows["encoder"] + rows["decoder"] == rows["total"]  # a shared table is counted once, with the decoder
    assert (rows["of which token embedding"] == 0) == shared


def test_info_runs_from_any_directory(tmp_path: Path) -> None:
    result = python("from keypilot.cli import main; raise SystemExit(main(['info']))", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "KeyPilot model from keypilot" in result.stdout and "total" in result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "keypilot: choose a command: data, tokenizer, priors, info, train, serve, bench, export, predict, evaluate, demo"),
        (["data"], "keypilot data: choose a command: generate, check, ocr, cache, preview"),
        (["bench"], "keypilot bench: choose a command: train, serve, infer"),
        (["data", "generate", "--out", "x"], "keypilot data generate: the following arguments are required: --num"),
        (["data", "generate", "--out", "x", "--num", "0"], "keypilot data generate: argument --num: must be at least 1, got 0"),
        (["predict", "--run", "r", "--image", "i", "--prev-layout", "QWERTY"], "keypilot predict: argument --prev-layout: invalid choice"),
        (["serve", "--run", "r", "--port", "70000"], "keypilot serve: argument --port: must be a port number 1-65535, got 70000"),
    ],
)
def test_usage_errors_are_one_line_without_internal_names(argv: list[str], expected: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(expected), err
    assert "_command" not in err and "usage:" not in err


def test_version_and_defaults_in_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"keypilot {__version__}"
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(onnx) (required)" in text and "--prev-layout {EN,ZH,SYM,EMOJI,NUM} (default: EN)" in text
    assert "--input-type {text,number,phone,email,password,url}" in text
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 8000)" in text and "(default: 127.0.0.1)" in text


def test_debug_shows_the_traceback(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image", encoding="utf-8")
    code, _, err = run_cli(capsys, "--debug", "info", "--config", notes)
    assert code == 1 and "Traceback (most recent call last)" in err and "ConfigError" in err
    code, _, err = run_cli(capsys, "info", "--config", notes, "--debug")  # after the command, too
    assert code == 1 and "Traceback (most recent call last)" in err


def test_an_internal_error_is_one_line_too(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import keypilot.info

    def broken(config_path):
        return {}["missing"]  # a bug, not the user's mistake

    monkeypatch.setattr(keypilot.info, "print_model_info", broken)
    code, _, err = run_cli(capsys, "info", "--config", "tiny")
    assert code == 1
    assert one_line(err, "info") == ("keypilot info: 'missing' (KeyError: an internal error; `--debug` shows where, "
                                     "please report it)")


def test_scripts_train_is_the_train_command() -> None:
    result = python("""
        import runpy, sys
        sys.argv = ["scripts/train.py", "--help"]
        runpy.run_path("scripts/train.py", run_name="__main__")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: keypilot train")

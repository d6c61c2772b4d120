"""The ``keypilot`` command. Each subcommand parses its arguments and calls one function.

Imports happen inside each handler so that ``keypilot data check`` does not pay for torch,
and so that a part of the project can be used without the others installed. Handlers check
what the user named (run folder, image, data, config) before anything heavy loads.

Every failure takes one path (``cli_support.run_command``): one line ``keypilot <command>:
<what is wrong>`` on stderr and a non-zero exit status; ``--debug`` shows the traceback
instead. A subcommand that writes an output names it (``set_defaults(output="out")``) so that
a failure removes what it created. A closed pipe (``| head``) ends the command silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keypilot import __version__
from keypilot.cli_support import (
    CommandError,
    Parser,
    data_folder,
    escape_unprintable_output,
    existing,
    export_folder,
    port_number,
    positive_float,
    positive_int,
    run_command,
    run_folder,
)
from keypilot.labels import INPUT_TYPES, LAYOUTS

# ---------------------------------------------------------------------------- handlers


def _data_generate(args: argparse.Namespace) -> int:
    from keypilot.data.generate import generate_dataset

    try:
        generate_dataset(args.out, num=args.num, seed=args.seed, workers=args.workers, renderer=args.renderer)
    except RuntimeError as exc:  # --renderer html without a usable Chromium
        print(f"keypilot data generate: {exc}", file=sys.stderr)
        return 2
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from keypilot.data.format import check_dataset

    report = check_dataset(args.path, out=sys.stdout)
    return 0 if report.ok else 1


def _data_ocr(args: argparse.Namespace) -> int:
    from keypilot.data.format import DataFormatError
    from keypilot.ocr.fill import fill_screen_text
    from keypilot.ocr.reader import OcrUnavailable

    existing(args.path, "data set")
    try:
        report = fill_screen_text(args.path, force=args.force)
    except (DataFormatError, OcrUnavailable) as err:
        print(f"keypilot data ocr: {err}", file=sys.stderr)
        return 1
    print(f"{args.path}: screen_text filled on {report.filled} of {report.records} records "
          f"({report.screens_read} screenshots read; {report.kept} already had it)")
    return 0


def _data_cache(args: argparse.Namespace) -> int:
    from keypilot.config import ConfigError
    from keypilot.train.data import cache_data_set

    try:
        return cache_data_set(args.data, args.config)
    except ConfigError as err:
        print(f"keypilot data cache: {err}", file=sys.stderr)
        return 1


def _data_preview(args: argparse.Namespace) -> int:
    from keypilot.data.preview import make_contact_sheet

    existing(args.path, "data set")
    make_contact_sheet(args.path, args.out, num=args.num, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _tokenizer_train(args: argparse.Namespace) -> int:
    from keypilot.tokenizer import train_tokenizer

    existing(args.data, "data set")
    if args.out.is_dir():
        raise CommandError(f"--out {args.out} is a folder; give the tokenizer file to write, e.g. {args.out / 'tokenizer.json'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)  # removed again on failure, like --out itself
    train_tokenizer(args.data, args.out, vocab_size=args.vocab_size)
    return 0


def _priors_build(args: argparse.Namespace) -> int:
    from keypilot.data.format import read_records
    from keypilot.priors import build_priors

    train = args.data / "train.jsonl" if args.data.is_dir() else args.data
    out = args.out or (args.data if args.data.is_dir() else args.data.parent) / "priors"
    summary = build_priors(read_records(train, check_images=False), out)
    for key, value in summary.items():
        print(f"{key:>20}: {value}")
    print(f"wrote {out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from keypilot.config import load_config
    from keypilot.info import print_model_info

    load_config(args.config)  # a bad config is named before torch is imported
    print_model_info(args.config)
    return 0


TRAIN_OVERRIDES = ("max_steps", "save_every", "log_every", "eval_every", "batch_size")


def _train(args: argparse.Namespace) -> int:
    from keypilot.config import load_config, parse_config

    config = load_config(args.config)
    for name in TRAIN_OVERRIDES:
        if getattr(args, name, None) is not None:
            config["training"][name] = getattr(args, name)
    parse_config(config)  # the overrides obey the same schema
    data_folder(args.data)

    from keypilot.train.loop import train

    train(config, args.data, args.out, resume=args.resume, skip_bad=args.skip_bad, device=args.device)
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.backend == "onnx":
        export_folder(args.run)
    else:
        run_folder(args.run)
    existing(args.samples, "data set folder")
    from keypilot.serve.app import serve

    return serve(args.run, host=args.host, port=args.port, backend=args.backend, samples_dir=args.samples,
                 access_log=not args.no_access_log, threads=args.threads, int8=args.int8,
                 screen_text=not args.no_screen_text)


def _bench_train(args: argparse.Namespace) -> int:
    from keypilot.config import load_config
    from keypilot.train.bench import print_bench_train

    for config in args.config or ():
        load_config(config)
    if args.data is not None:
        data_folder(args.data)
    return print_bench_train(args.config, batch_size=args.batch_size, steps=args.steps, device=args.device,
                             data=args.data, compare=args.compare, old_path=args.old_path, as_json=args.json,
                             profile=args.profile)


def _bench_serve(args: argparse.Namespace) -> int:
    if args.url is None and args.run is None:
        raise CommandError("give --run RUN (a server is started) or --url URL (a server already running on loopback)")
    if args.run is not None and args.backend == "onnx":
        export_folder(args.run)
    elif args.run is not None:
        run_folder(args.run)
    from keypilot.serve.loadtest import bench_serve

    figures = bench_serve(args.run, clients=args.clients, seconds=args.seconds, url=args.url, backend=args.backend,
                          threads=args.threads, int8=args.int8, screen_text=not args.no_screen_text)
    for key, value in figures.items():
        print(f"{key:>15}: {value}")
    return 1 if figures["errors"] else 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from keypilot.inference.postprocess import format_prediction
    from keypilot.inference.privacy import is_private

    # The folder is checked before anything loads: an export for the torch-free backend, a run otherwise.
    export_dir = export_folder(args.run) if args.backend == "onnx" else run_folder(args.run)
    if is_private(args.input_type):
        # A password field: the screenshot is not read and the model not asked (privacy.py).
        from keypilot.inference.privacy import withheld_prediction

        result = withheld_prediction(args.prev_layout)
        print(json.dumps(result.to_dict(), ensure_ascii=False) if args.json else
              f"strip        (empty: a password field; nothing was read, predicted or kept)\nlayout       {result.layout}")
        return 0
    from keypilot.images import read_screenshot

    image = read_screenshot(args.image)  # checked (and decoded) before the model loads
    if args.backend == "onnx":  # torch-free: works on a `pip install keypilot[onnx]`
        from keypilot.inference.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor.from_pretrained(export_dir, int8=args.int8)
    else:
        from keypilot.inference.predictor import Predictor

        predictor = Predictor.from_pretrained(args.run, device=args.device)
    result = predictor.predict(image, args.text, prev_layout=args.prev_layout, user_id=args.user_id)
    print(json.dumps(result.to_dict(), ensure_ascii=False) if args.json else format_prediction(result))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    run_folder(args.run)
    existing(args.data, "data file or folder")
    existing(args.train_data, "training data file or folder")
    from keypilot.evaluation.evaluate import evaluate

    evaluate(args.run, args.data, args.out, baselines=args.baselines, max_records=args.limit,
             train_data=args.train_data, simulate_records=args.simulate, device=args.device,
             recognise=not args.no_screen_text)
    print(f"wrote {args.out / 'report.md'}, {args.out / 'metrics.json'}, {args.out / 'predictions.jsonl'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    run_folder(args.run)
    existing(args.data, "data set")
    existing(args.accuracy, "data set")
    from keypilot.inference.export import export_run

    export_run(args.run, args.out, int8=args.int8, calib_images=args.calib_images, calib_data=args.data)
    if args.accuracy:
        from keypilot.inference.parity import print_accuracy, quantization_accuracy

        print_accuracy(quantization_accuracy(args.out, args.accuracy, limit=args.accuracy_limit))
    return 0


def _bench_infer(args: argparse.Namespace) -> int:
    if args.run is not None:
        run_folder(args.run)
    else:
        from keypilot.config import load_config

        load_config(args.config)
    existing(args.data, "data set")
    from keypilot.inference.bench import run_bench_infer

    return run_bench_infer(args.run, args.config, args.backend, args.threads, args.repeats, args.screens, args.data,
                           args.json, args.baseline)


def _demo(args: argparse.Namespace) -> int:
    from keypilot.demo import run_demo

    return run_demo(args.out, keypilot=main)


# ---------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="keypilot", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"keypilot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate, check and preview data sets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("generate", help="write a synthetic data set of phone screens and typing")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num", type=positive_int, required=True, help="number of samples over all splits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: all cores)")
    p.add_argument("--renderer", choices=("mixed", "pil", "html"), default="mixed",
                   help="who draws the screens: mixed (Pillow alone when Chromium is unavailable), pil, html")
    p.set_defaults(func=_data_generate, output="out")
    p = data.add_parser("check", help="validate a data set folder or a .jsonl file")
    p.add_argument("path", type=Path)
    p.set_defaults(func=_data_check)
    p = data.add_parser("ocr", help="fill the screen_text field (text read from each screenshot) of records that lack it")
    p.add_argument("path", type=Path, help="data set folder or .jsonl file (rewritten in place, atomically)")
    p.add_argument("--force", action="store_true", help="read every record's screenshot again, also those with screen_text")
    p.set_defaults(func=_data_ocr)
    p = data.add_parser("cache", help="write the preprocessed shard cache a training run of --config reads")
    p.add_argument("--data", type=Path, required=True, help="data set folder (train.jsonl, val.jsonl, tokenizer.json)")
    p.add_argument("--config", type=Path, required=True)
    p.set_defaults(func=_data_cache)
    p = data.add_parser("preview", help="draw a contact sheet of samples")
    p.add_argument("path", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num", type=positive_int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_data_preview, output="out")

    tok = sub.add_parser("tokenizer", help="the multilingual byte-level BPE").add_subparsers(dest="tok_command", required=True)
    p = tok.add_parser("train", help="train the tokenizer on a data set")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--vocab-size", type=positive_int, default=32000)
    p.set_defaults(func=_tokenizer_train, output="out")

    pri = sub.add_parser("priors", help="lexicons, pinyin IME, emoji and n-gram priors").add_subparsers(dest="priors_command", required=True)
    p = pri.add_parser("build", help="build the priors from a training split and the installed word lists")
    p.add_argument("--data", type=Path, required=True, help="data folder with train.jsonl, or a .jsonl file")
    p.add_argument("--out", type=Path, default=None, help="priors folder (default: DATA/priors)")
    p.set_defaults(func=_priors_build)

    p = sub.add_parser("info", help="parameters per component and model size")
    p.add_argument("--config", default="keypilot", help="a YAML file or a shipped config's name (tiny, keypilot)")
    p.set_defaults(func=_info)

    p = sub.add_parser("train", help="train a model on a data set")
    p.add_argument("--config", required=True, help="a YAML file or a shipped config's name (tiny, keypilot)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-steps", type=positive_int, default=None)
    p.add_argument("--save-every", type=positive_int, default=None)
    p.add_argument("--log-every", type=positive_int, default=None)
    p.add_argument("--eval-every", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) invalid records instead of stopping")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.set_defaults(func=_train, output="out")

    p = sub.add_parser("serve", help="HTTP API and the browser keyboard for a trained run")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1", help="loopback by default; the API has no authentication")
    p.add_argument("--port", type=port_number, default=8000)
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--samples", type=Path, default=None, help="data set folder whose screens the page offers")
    p.add_argument("--no-access-log", action="store_true", help="do not log each request")
    p.add_argument("--no-screen-text", action="store_true",
                   help="do not read the text of new screens in the background (docs/screen-text.md)")
    p.add_argument("--threads", type=positive_int, default=None, help="model intra-op threads (default: the backend's)")
    p.add_argument("--int8", action="store_true", help="with --backend onnx: the export's INT8 graphs")
    p.set_defaults(func=_serve)

    bench = sub.add_parser("bench", help="speed measurements").add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("train", help="training samples/s and where a step's time goes (data, forward, backward, optimizer)")
    p.add_argument("--config", action="append", default=None, help="repeatable (default: tiny and keypilot)")
    p.add_argument("--data", type=Path, default=None, help="data set folder: the run's own loader (default: a synthetic batch)")
    p.add_argument("--old-path", action="store_true", help="the step before the shard cache (decoded screenshots, fp32...)")
    p.add_argument("--compare", action="store_true", help="the old and the new path side by side, and their ratio")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--steps", type=positive_int, default=10, help="timed steps, after untimed warm-up ones")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="also the torch profiler's top N operators")
    p.add_argument("--json", action="store_true", help="the figures as JSON")
    p.add_argument("--device", default=None)
    p.set_defaults(func=_bench_train)
    p = bench.add_parser("serve", help="load test: concurrent typing clients against the HTTP API on loopback")
    p.add_argument("--run", type=Path, default=None, help="run folder; a server is started on a free loopback port")
    p.add_argument("--url", default=None, help="an already running server on loopback (instead of --run)")
    p.add_argument("--clients", type=positive_int, default=16)
    p.add_argument("--seconds", type=positive_float, default=10.0)
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--threads", type=positive_int, default=None, help="the server's model intra-op threads")
    p.add_argument("--int8", action="store_true", help="with --backend onnx: the export's INT8 graphs")
    p.add_argument("--no-screen-text", action="store_true", help="the server reads no screen text")
    p.set_defaults(func=_bench_serve)
    p = bench.add_parser("infer", help="per-stage inference latency, model size and peak RSS (torch / ONNX / ONNX INT8)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a trained run folder")
    src.add_argument("--config", help="a config (file or shipped name): random weights and a throwaway tokenizer (speed only)")
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8", "all"), default="onnx-int8")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed rounds over the sample screens")
    p.add_argument("--screens", type=positive_int, default=8, help="sample screens (also INT8 calibration images)")
    p.add_argument("--data", type=Path, default=None, help="data set for the screens (default: a small generated one)")
    p.add_argument("--baseline", default="auto", help="a config measured in the same run for a side-by-side "
                   "(default: <config>-v1.yaml beside --config, the previous design; 'none' to skip)")
    p.add_argument("--json", action="store_true", help="one JSON object: machine, peak MAC rates, results (and baseline)")
    p.set_defaults(func=_bench_infer)

    p = sub.add_parser("export", help="ONNX graphs (+ INT8) of a run, tokenizer and manifest; parity against torch")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--int8", action="store_true", help="also INT8 graphs: static QDQ screen encoder, dynamic elsewhere")
    p.add_argument("--calib-images", type=positive_int, default=32, help="screenshots for the static INT8 calibration")
    p.add_argument("--data", type=Path, default=None, help="data set for calibration and parity (default: generated screens)")
    p.add_argument("--accuracy", type=Path, default=None, metavar="DATA",
                   help="also score FP32 vs INT8 ONNX on this test split (layout accuracy, top-1/top-5)")
    p.add_argument("--accuracy-limit", type=positive_int, default=None, help="records of --accuracy to score (default: all)")
    p.set_defaults(func=_export, output="out")

    p = sub.add_parser("predict", help="one keystroke: screenshot + typed text -> the strip and the layout")
    p.add_argument("--run", type=Path, required=True, help="a run folder (torch) or an export folder / run with RUN/export (onnx)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--int8", action="store_true", help="with --backend onnx: the export's INT8 graphs")
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--text", default="", help="text already in the focused field")
    p.add_argument("--prev-layout", default="EN", choices=LAYOUTS)
    p.add_argument("--input-type", default=None, choices=INPUT_TYPES,
                   help="what the app declares the field is; for password nothing is read or predicted")
    p.add_argument("--user-id", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="the contracts' Predictor result as one JSON line")
    p.set_defaults(func=_predict)

    p = sub.add_parser("evaluate", help="metrics, plots and report of a run on a data set")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help=".jsonl file (or folder) in the record format")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--baselines", action="store_true", help="also score the text-only ablation and the baselines")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N records only")
    p.add_argument("--train-data", type=Path, default=None, help="training split for the n-gram (default: train.jsonl beside --data)")
    p.add_argument("--simulate", type=int, default=50, help="records in the keystroke-savings simulation")
    p.add_argument("--no-screen-text", action="store_true",
                   help="do not read the screen text of records that lack the screen_text field")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_evaluate, output="out")

    p = sub.add_parser("demo", help="the main job end to end on built-in defaults")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    escape_unprintable_output()
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

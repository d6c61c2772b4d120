"""The ``keypilot`` command. Each subcommand parses its arguments and calls one function.

Imports happen inside each handler so that ``keypilot data check`` does not pay for torch,
and so that a part of the project can be used without the others installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _data_generate(args: argparse.Namespace) -> int:
    from keypilot.data.generate import generate_dataset

    generate_dataset(args.out, num=args.num, seed=args.seed, workers=args.workers)
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from keypilot.data.format import check_dataset

    report = check_dataset(args.path, out=sys.stdout)
    return 0 if report.ok else 1


def _data_preview(args: argparse.Namespace) -> int:
    from keypilot.data.preview import make_contact_sheet

    make_contact_sheet(args.path, args.out, num=args.num, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _tokenizer_train(args: argparse.Namespace) -> int:
    from keypilot.tokenizer import train_tokenizer

    train_tokenizer(args.data, args.out, vocab_size=args.vocab_size)
    return 0


def _info(args: argparse.Namespace) -> int:
    from keypilot.info import print_model_info

    print_model_info(args.config)
    return 0


def _train(args: argparse.Namespace) -> int:
    from keypilot.train.loop import train_from_args

    return train_from_args(args)


def _serve(args: argparse.Namespace) -> int:
    from keypilot.serve.app import serve

    return serve(args.run, host=args.host, port=args.port, backend=args.backend, samples_dir=args.samples,
                 access_log=not args.no_access_log, threads=args.threads, int8=args.int8)


def _bench_train(args: argparse.Namespace) -> int:
    from keypilot.train.bench import print_bench_train

    return print_bench_train(args.config, batch_size=args.batch_size, steps=args.steps, device=args.device)


def _bench_serve(args: argparse.Namespace) -> int:
    from keypilot.serve.loadtest import bench_serve

    figures = bench_serve(args.run, clients=args.clients, seconds=args.seconds, url=args.url, backend=args.backend,
                          threads=args.threads, int8=args.int8)
    for key, value in figures.items():
        print(f"{key:>15}: {value}")
    return 1 if figures["errors"] else 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from keypilot.inference.postprocess import format_prediction

    if args.backend == "onnx":  # torch-free: works on a `pip install keypilot[onnx]`
        from keypilot.inference.onnx_predictor import MANIFEST_FILE, OnnxPredictor

        export_dir = args.run if (args.run / MANIFEST_FILE).is_file() else args.run / "export"
        if not (export_dir / MANIFEST_FILE).is_file():
            raise SystemExit(f"no ONNX export at {args.run} or {args.run / 'export'}: run `keypilot export` first")
        predictor = OnnxPredictor.from_pretrained(export_dir, int8=args.int8)
    else:
        from keypilot.inference.predictor import Predictor

        predictor = Predictor.from_pretrained(args.run, device=args.device)
    result = predictor.predict(args.image, args.text, prev_layout=args.prev_layout, user_id=args.user_id)
    print(json.dumps(result.to_dict(), ensure_ascii=False) if args.json else format_prediction(result))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from keypilot.evaluation.evaluate import evaluate

    evaluate(args.run, args.data, args.out, baselines=args.baselines, max_records=args.limit,
             train_data=args.train_data, simulate_records=args.simulate, device=args.device)
    print(f"wrote {args.out / 'report.md'}, {args.out / 'metrics.json'}, {args.out / 'predictions.jsonl'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from keypilot.inference.export import export_run

    export_run(args.run, args.out, int8=args.int8, calib_images=args.calib_images, calib_data=args.data)
    if args.accuracy:
        from keypilot.inference.parity import print_accuracy, quantization_accuracy

        print_accuracy(quantization_accuracy(args.out, args.accuracy, limit=args.accuracy_limit))
    return 0


def _bench_infer(args: argparse.Namespace) -> int:
    from keypilot.inference.bench import run_bench_infer

    return run_bench_infer(args.run, args.config, args.backend, args.threads, args.repeats, args.screens, args.data,
                           args.json, args.baseline)


def _demo(args: argparse.Namespace) -> int:
    from keypilot.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keypilot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate, check and preview data sets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("generate", help="write a synthetic data set of phone screens and typing")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num", type=int, required=True, help="number of samples over all splits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(func=_data_generate)
    p = data.add_parser("check", help="validate a data set folder or a .jsonl file")
    p.add_argument("path", type=Path)
    p.set_defaults(func=_data_check)
    p = data.add_parser("preview", help="draw a contact sheet of samples")
    p.add_argument("path", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_data_preview)

    tok = sub.add_parser("tokenizer", help="the multilingual byte-level BPE").add_subparsers(dest="tok_command", required=True)
    p = tok.add_parser("train", help="train the tokenizer on a data set")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--vocab-size", type=int, default=32000)
    p.set_defaults(func=_tokenizer_train)

    p = sub.add_parser("info", help="parameters per component and model size")
    p.add_argument("--config", type=Path, default=Path("configs/keypilot.yaml"))
    p.set_defaults(func=_info)

    p = sub.add_parser("train", help="train a model on a data set")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--save-every", type=int, default=None)
    p.add_argument("--log-every", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) invalid records instead of stopping")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.set_defaults(func=_train)

    p = sub.add_parser("serve", help="HTTP API and the browser keyboard for a trained run")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1", help="loopback by default; the API has no authentication")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--samples", type=Path, default=None, help="data set folder whose screens the page offers")
    p.add_argument("--no-access-log", action="store_true", help="do not log each request")
    p.add_argument("--threads", type=int, default=None, help="model intra-op threads (default: the backend's)")
    p.add_argument("--int8", action="store_true", help="with --backend onnx: the export's INT8 graphs")
    p.set_defaults(func=_serve)

    bench = sub.add_parser("bench", help="speed measurements").add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("train", help="training samples/s (forward + backward + step) at a config's batch size")
    p.add_argument("--config", type=Path, action="append", default=None, help="repeatable (default: tiny and keypilot)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=5, help="timed steps, after 2 untimed ones")
    p.add_argument("--device", default=None)
    p.set_defaults(func=_bench_train)
    p = bench.add_parser("serve", help="load test: concurrent typing clients against the HTTP API on loopback")
    p.add_argument("--run", type=Path, default=None, help="run folder; a server is started on a free loopback port")
    p.add_argument("--url", default=None, help="an already running server on loopback (instead of --run)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--threads", type=int, default=None, help="the server's model intra-op threads")
    p.add_argument("--int8", action="store_true", help="with --backend onnx: the export's INT8 graphs")
    p.set_defaults(func=_bench_serve)
    p = bench.add_parser("infer", help="per-stage inference latency, model size and peak RSS (torch / ONNX / ONNX INT8)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a trained run folder")
    src.add_argument("--config", type=Path, help="a config: random weights and a throwaway tokenizer (speed only)")
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8", "all"), default="onnx-int8")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds over the sample screens")
    p.add_argument("--screens", type=int, default=8, help="sample screens (also INT8 calibration images)")
    p.add_argument("--data", type=Path, default=None, help="data set for the screens (default: a small generated one)")
    p.add_argument("--baseline", default="auto", help="a config measured in the same run for a side-by-side "
                   "(default: <config>-v1.yaml beside --config, the previous design; 'none' to skip)")
    p.add_argument("--json", action="store_true", help="one JSON object: machine, peak MAC rates, results (and baseline)")
    p.set_defaults(func=_bench_infer)

    p = sub.add_parser("export", help="ONNX graphs (+ INT8) of a run, tokenizer and manifest; parity against torch")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--int8", action="store_true", help="also INT8 graphs: static QDQ screen encoder, dynamic elsewhere")
    p.add_argument("--calib-images", type=int, default=32, help="screenshots for the static INT8 calibration")
    p.add_argument("--data", type=Path, default=None, help="data set for calibration and parity (default: generated screens)")
    p.add_argument("--accuracy", type=Path, default=None, metavar="DATA",
                   help="also score FP32 vs INT8 ONNX on this test split (layout accuracy, top-1/top-5)")
    p.add_argument("--accuracy-limit", type=int, default=None, help="records of --accuracy to score (default: all)")
    p.set_defaults(func=_export)

    p = sub.add_parser("predict", help="one keystroke: screenshot + typed text -> the strip and the layout")
    p.add_argument("--run", type=Path, required=True, help="a run folder (torch) or an export folder / run with RUN/export (onnx)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--int8", action="store_true", help="with --backend onnx: the export's INT8 graphs")
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--text", default="", help="text already in the focused field")
    p.add_argument("--prev-layout", default="EN", choices=("EN", "ZH", "SYM", "EMOJI", "NUM"))
    p.add_argument("--user-id", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="the contracts' Predictor result as one JSON line")
    p.set_defaults(func=_predict)

    p = sub.add_parser("evaluate", help="metrics, plots and report of a run on a data set")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help=".jsonl file (or folder) in the record format")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--baselines", action="store_true", help="also score the text-only ablation and the baselines")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N records only")
    p.add_argument("--train-data", type=Path, default=None, help="training split for the n-gram (default: train.jsonl beside --data)")
    p.add_argument("--simulate", type=int, default=50, help="records in the keystroke-savings simulation")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("demo", help="the main job end to end on built-in defaults")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""What every ``keypilot`` subcommand shares: argument types, input checks, the parser's
one-line usage errors and help with defaults, and the one error path (``run_command``).

``run_command`` reports any failure as one line ``keypilot <command>: <what is wrong>`` on
stderr with exit status 1 (2 for a malformed command line, 130 when interrupted, 141 when
stdout's reader went away); ``--debug`` shows the traceback instead. An output folder or
file the command created is removed again when it fails, so a failed command leaves nothing
behind.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import traceback
from pathlib import Path

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 130, 141


class CommandError(Exception):
    """A mistake the user can fix; the message says what is wrong and what to do."""


# The library's own "your input is wrong" errors, by module. Looked up only in modules the
# command imported (one it did not import cannot have raised), so no handler pays for torch.
USER_ERRORS = {
    "keypilot.config": "ConfigError",
    "keypilot.data.format": "DataFormatError",
    "keypilot.images": "ImageRejected",
    "keypilot.train.loop": "TrainError",
    "keypilot.train.data": "TokenizerTooLarge",
    "keypilot.demo": "DemoStepFailed",
}


# ---------------------------------------------------------------------------- argument types and input checks


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def existing(path: Path | None, what: str) -> None:
    if path is not None and not path.exists():
        raise CommandError(f"{path}: no such {what}")


def run_folder(run: Path) -> None:
    """A trained run (config, weights, tokenizer), checked before a model loads."""
    from keypilot.run_folder import missing_run_files

    if not run.is_dir():
        raise CommandError(f"{run}: no such run folder (train one with `keypilot train --out {run}`)")
    missing = missing_run_files(run)
    if missing:
        raise CommandError(f"{run} is not a trained run folder: {', '.join(missing)} missing")


def export_folder(run: Path) -> Path:
    from keypilot.run_folder import EXPORT_DIR, MANIFEST_FILE
    from keypilot.run_folder import export_folder as find_export

    export = find_export(run)
    if export is None:
        raise CommandError(f"no ONNX export ({MANIFEST_FILE}) in {run} or {run / EXPORT_DIR}: "
                           f"run `keypilot export --run {run} --out {run / EXPORT_DIR}` first")
    return export


def data_folder(data: Path) -> None:
    if not (data / "train.jsonl").is_file():
        raise CommandError(f"{data}: no train.jsonl there (make a data set with `keypilot data generate --out {data}`)")


# ---------------------------------------------------------------------------- parser


class HelpFormatter(argparse.HelpFormatter):
    """Ends each option's help with its default, or with "(required)"."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.option_strings and action.help != argparse.SUPPRESS:
            text = action.help or ""
            default = action.default
            if action.required:
                text += " (required)"
            elif "(default" not in text and default is not None and not isinstance(default, bool) \
                    and default not in (argparse.SUPPRESS, ""):
                text += " (default: %(default)s)"
            action = copy.copy(action)
            action.help = text.strip() or None
        return super()._format_action(action)


class Parser(argparse.ArgumentParser):
    """One-line usage errors naming the command; ``--debug`` on every (sub)command."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # SUPPRESS: a subcommand's absent --debug must not reset one given before it.
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on failure, show the Python traceback instead of one line")
        self.set_defaults(command_name=self.prog)  # the innermost parser's name wins

    def add_subparsers(self, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("metavar", "COMMAND")
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if "the following arguments are required: COMMAND" in message and self._subparsers is not None:
            choices = next(a.choices for a in self._subparsers._group_actions if a.choices)
            message = f"choose a command: {', '.join(choices)}"
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------------------- the one error path


def user_error_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [CommandError, ValueError, OSError]
    for module, name in USER_ERRORS.items():
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def one_line(err: BaseException) -> str:
    """The error's own message; an OSError as ``path: reason``; a long listing cut to 20 lines."""
    if isinstance(err, OSError) and err.strerror:
        message = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        message = str(err) or type(err).__name__
    lines = message.splitlines() or [message]
    if len(lines) > 20:
        lines = [*lines[:19], f"... and {len(lines) - 19} more lines"]
    return "\n".join(lines)


def created_by_command(args: argparse.Namespace) -> Path | None:
    """The outermost folder (or file) the command will create for its output, which a failure
    removes again; None when the output path exists already (nothing of the user's is touched)."""
    output = getattr(args, getattr(args, "output", "") or "", None)
    if output is None or os.path.lexists(output):
        return None
    created = Path(output).absolute()
    while not os.path.lexists(created.parent):
        created = created.parent
    return created


def remove_partial_output(path: Path) -> None:
    from keypilot.run_folder import CHECKPOINT_DIR, METRICS_FILE

    checkpoints, metrics = path / CHECKPOINT_DIR, path / METRICS_FILE
    if (checkpoints.is_dir() and any(checkpoints.iterdir())) or (metrics.is_file() and metrics.stat().st_size):
        return  # a run that trained (metrics) or saved a checkpoint (resumable) is never thrown away
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def quiet_broken_pipe() -> None:
    # Python flushes stdout at exit; with the reader gone that would raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout has no file descriptor (captured): nothing will be flushed to a pipe


def escape_unprintable_output() -> None:
    """User data may hold characters the terminal's encoding cannot show: escape them, never crash."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command's handler (``args.func``); every failure becomes one line and an exit status."""
    created = created_by_command(args)
    try:
        code = int(args.func(args) or 0)
    except BrokenPipeError:
        quiet_broken_pipe()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{args.command_name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one place every failure is reported
        if created is not None:
            remove_partial_output(created)
        if getattr(args, "debug", False):
            traceback.print_exc()
            return EXIT_ERROR
        message = one_line(err)
        if not isinstance(err, user_error_types()):
            message += f" ({type(err).__name__}: an internal error; `--debug` shows where, please report it)"
        try:
            print(f"{args.command_name}: {message}", file=sys.stderr)
        except BrokenPipeError:
            pass
        return EXIT_ERROR
    if code and created is not None:
        remove_partial_output(created)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
        return EXIT_BROKEN_PIPE
    return code


"""`ntjax`: the command line Claude Code and users run. Thin: parse, call a command, print.

Every command prints human output by default and exactly one JSON object with `--json`; bad input ends
with one clear line on stderr and exit status 2 (set NTJAX_TRACEBACK=1 to see the traceback of an
unexpected failure).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ntjax.errors import DiskFull, NtjaxError

COMMANDS = ("train", "run", "curves", "debug", "sweep", "lr_find", "scale", "plan", "monitor", "eval", "detect",
            "mup")


@dataclasses.dataclass
class Result:
    """What a command returns: the JSON object for `--json`, and the text a person reads."""

    data: dict[str, Any]
    human: str | Callable[[], None] = ""
    exit_code: int = 0


def _seconds(text: str) -> float:
    value = float(text)
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """`--progress-every SECONDS`: plain `progress:` lines when stdout is not a terminal (0 switches them off)."""
    parser.add_argument("--progress-every", type=_seconds, default=30.0, metavar="SECONDS",
                        help="when stdout is not a terminal, print a plain 'progress:' line this often and at "
                             "every eval/checkpoint (default 30; 0 = off); with --json they go to stderr")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")


def add_trust_flags(parser: argparse.ArgumentParser, spec: bool = True) -> None:
    """`--trust-run-code` (and `--spec` where the command has none): a run folder's spec is imported only
    when the user names it or trusts the folder (see ntjax.core.trust)."""
    if spec:
        parser.add_argument("--spec", help="the spec file the run was trained with: naming it allows importing it")
    parser.add_argument("--trust-run-code", action="store_true",
                        help="import the spec a run folder's config.json names without naming it (runs its code)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ntjax", description="neural-trainer: train, read, diagnose, "
                                     "sweep and scale neural-network training runs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ntjax.commands.{name}").register(sub)
    return parser


def dumps(data: dict[str, Any]) -> str:
    """The JSON text `--json` prints: strict (no NaN tokens), numpy values converted."""
    from ntjax.core.logger import strict_json

    return json.dumps(strict_json(data), allow_nan=False, default=str)


# Set when a command stopped on a full disk: the checkpointer's background writers are then stuck mid-save.
_DISK_FULL = [False]


def console() -> None:
    """The `ntjax` executable: `main`, then exit. After a full disk, exit without joining the background
    threads: orbax's async writers cannot finish their save and would print tracebacks at interpreter exit
    under the one-line error (what was logged is already on disk, line by line)."""
    code = main()
    if _DISK_FULL[0]:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    as_json = getattr(args, "json", False)
    real_stdout = sys.stdout
    from ntjax.core import trust
    from ntjax.core.faults import disk_full

    trust.configure([getattr(args, "spec", None)], getattr(args, "trust_run_code", False))
    try:
        # With --json, anything a library prints goes to stderr so stdout holds exactly one object.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result: Result = args.run(args)
            if not as_json:
                if callable(result.human):
                    result.human()
                elif result.human:
                    print(result.human)
    except NtjaxError as e:
        _DISK_FULL[0] = isinstance(e, DiskFull)
        print(f"ntjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ntjax ... | head` closed the pipe: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"ntjax {args.command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:  # the slim install (the bridges only) lacks the CLI's dependencies
        if e.name is None or e.name.split(".")[0] in ("ntjax", "bridges"):
            raise
        print(f"ntjax {args.command}: error: this command needs {e.name.split('.')[0]}, which is not installed: "
              "pip install 'ntjax[cli]' (the bare package holds only the bridges)", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None and not disk_full(e):
            if os.environ.get("NTJAX_TRACEBACK"):
                raise
            print(f"ntjax {args.command}: internal error: {type(e).__name__}: {e} "
                  "(set NTJAX_TRACEBACK=1 for the traceback)", file=sys.stderr)
            return 1
        # A path the user gave that cannot be written or read (read-only, a file where a folder is needed).
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            why = f"cannot create {e.filename}: a file is in the way where a folder is needed"
        else:
            why = disk_full(e) or f"cannot write or read {e.filename}: {e.strerror or e}"
        _DISK_FULL[0] = bool(disk_full(e))
        print(f"ntjax {args.command}: error: {why}", file=sys.stderr)
        return 2
    except SystemExit as e:  # user code (a spec) called sys.exit(): say so instead of vanishing with its code
        print(f"ntjax {args.command}: error: user code called sys.exit({e.code!r}); stopped", file=sys.stderr)
        return 2
    except Exception as e:  # an unexpected failure: one line unless asked for the traceback
        full = disk_full(e)
        if full:
            _DISK_FULL[0] = True
            print(f"ntjax {args.command}: error: {full}", file=sys.stderr)
            return 2
        if os.environ.get("NTJAX_TRACEBACK"):
            raise
        print(f"ntjax {args.command}: internal error: {type(e).__name__}: {e} "
              "(set NTJAX_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 1
    finally:
        trust.reset()  # the policy is per command: a library caller in the same process is not affected
    if as_json:
        try:
            real_stdout.write(dumps(result.data) + "\n")
            real_stdout.flush()
        except BrokenPipeError:
            return 0
    return result.exit_code


if __name__ == "__main__":
    console()

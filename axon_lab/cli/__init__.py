"""The ``axon-lab`` command: thin wrappers over the library.

Each sub-command lives in its own module in this package and exposes
``register(subparsers)``; modules are discovered, so adding a command is adding a file.
Exit codes: 0 ok; 1 usage or runtime error with a one-line reason; 99 thresholds failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import pkgutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import NoReturn

from axon_lab.errors import EXIT_ERROR, AxonLabError
from axon_lab.redact import redact_text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 1 (argparse's default is 2)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"axon-lab: {redact_text(message)}\n")
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every discovered sub-command."""
    from axon_lab import __version__

    parser = _Parser(prog="axon-lab", description="Performance workbench for Axon.")
    parser.add_argument("--version", action="version", version=f"axon-lab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (also used by tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_ERROR
    terminated: list[int] = []
    with _sigterm_as_interrupt(terminated):
        try:
            rc = func(args)
        except AxonLabError as exc:
            sys.stderr.write(f"axon-lab: {redact_text(str(exc))}\n")
            return exc.exit_code
        except (KeyboardInterrupt, InterruptedError):
            # Ctrl-C or SIGTERM: stop now (a corpus build keeps its cached vectors).
            sys.stderr.write("axon-lab: stopped" + (" (SIGTERM)" if terminated else "") + "\n")
            return 143 if terminated else 130
    return int(rc or 0)


@contextlib.contextmanager
def _sigterm_as_interrupt(seen: list[int]) -> Iterator[None]:
    """SIGTERM stops a command the way Ctrl-C does (``finally`` blocks run, children stop).

    Only in the main thread; the previous handler is restored after. ``serve`` replaces it
    with uvicorn's own while it serves (a graceful shutdown).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Command line: ``plumbob audit | agent | operator | crds``.

Each sub-command lives in the module that owns it; this module only parses arguments and
dispatches, so ``plumbob --help`` stays fast (heavy imports happen inside the handlers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plumbob", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _REGISTRARS:
        register(sub)
    return parser


def _register_crds(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("crds", help="print or write the CustomResourceDefinitions generated from the models")
    p.add_argument("--output-dir", help="write one file per CRD into this directory instead of stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if the files in --output-dir differ")

    def run(args: argparse.Namespace) -> int:
        from plumbob.api import crdgen

        return crdgen.main(output_dir=args.output_dir, check=args.check)

    p.set_defaults(handler=run)


_REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [_register_crds]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from plumbob import __version__

        print(__version__)
        return 0
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)

"""The ``orca-math`` command: one subcommand per stage.

Each stage module exposes ``add_command(subparsers)``; this file only lists them, so the list
below reads as the data flow. Modules are imported when the CLI starts, but heavy libraries
(torch, vllm, ray) are imported inside the commands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = [
    "orca_math.tiny_model_cli",
    "orca_math.evaluate.cli",
    "orca_math.world.cli",
    "orca_math.agents.cli",
    "orca_math.train.cli",
    "orca_math.serve_cli",
    "orca_math.pipeline.cli",
    "orca_math.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orca-math", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

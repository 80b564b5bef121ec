"""The ``orca-math`` command: one subcommand per stage.

Each stage module exposes ``add_command(subparsers)``; this file only lists them, so the list
below reads as the data flow. Modules are imported when the CLI starts, but heavy libraries
(torch, vllm, ray) are imported inside the commands.

Every command ends the same way (``common/ending.py``): Ctrl-C and SIGTERM stop it, and a failure
is one last line on stderr saying what failed, where and how to resume.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from orca_math.common.ending import run_to_one_last_line, signals_stop_the_command

# The stages in recipe order (eval runs after every model; train has sft and each round's train-pref),
# then the services, the whole recipe and the demo.
COMMAND_MODULES = [
    "orca_math.tiny_model.cli",
    "orca_math.world.cli",
    "orca_math.generate.cli",
    "orca_math.evaluate.cli",
    "orca_math.train.cli",
    "orca_math.practice.cli",
    "orca_math.judge.cli",
    "orca_math.prefs.cli",
    "orca_math.serve.cli",
    "orca_math.run.cli",
    "orca_math.plan.cli",
    "orca_math.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orca-math", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks on the terminal")
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
    with signals_stop_the_command():
        return run_to_one_last_line(args)


if __name__ == "__main__":
    sys.exit(main())

"""The ``sundstat`` command line: generate, build, serve, admin and ledger commands.

Each command is a thin shell over a library function; heavy imports happen inside the command so
``sundstat --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]

Handler = Callable[[argparse.Namespace], int]


def _cmd_generate(args: argparse.Namespace) -> int:
    from datasets.generate import generate

    summary = generate(args.persons, args.seed, Path(args.out), progress=not args.quiet, volume=args.volume)
    print(summary.describe())
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    import os

    from datasets.build import DEFAULT_BUILD_MEMORY_LIMIT, BuildError, build
    from datasets.reject_policy import RejectPolicy

    previous_umask = os.umask(0o077)  # the database and reject files: readable by this user only
    try:
        report = build(
            Path(args.dir),
            Path(args.db),
            catalog_dir=Path(args.catalog) if args.catalog else None,
            pseudonym_key_file=Path(args.pseudonym_key_file) if args.pseudonym_key_file else None,
            reject_dir=Path(args.reject_dir) if args.reject_dir else None,
            policy=RejectPolicy(args.max_reject_rate, args.allow_rejects),
            memory_limit=args.memory_limit or DEFAULT_BUILD_MEMORY_LIMIT,
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        os.umask(previous_umask)  # main() may run inside another program (the tests)
    print(report.describe())
    return 0


def _reject_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (0.01 is 1%), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; every command and subcommand answers ``--help``."""
    parser = argparse.ArgumentParser(
        prog="sundstat",
        description="Differentially private statistics over linked Danish health registers.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    gen = commands.add_parser(
        "generate",
        help="write synthetic linked registers (Parquet) and the catalog into a directory",
        description="Generate realistic synthetic linked registers, deterministic in --persons and --seed.",
    )
    gen.add_argument("--persons", type=_positive_int, required=True, help="number of persons in cpr")
    gen.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (same seed, same bytes)")
    gen.add_argument("--out", required=True, help="output directory (created if missing)")
    gen.add_argument(
        "--volume",
        choices=("default", "national"),
        default="default",
        help="event volume: default (the test data), or national (the Danish registers' yearly numbers "
        "of hospital contacts and prescriptions per person, about 3x and 4x as many rows)",
    )
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_cmd_generate)

    bld = commands.add_parser(
        "build",
        help="validate, pseudonymise and load register files into one DuckDB database",
        description=(
            "Validate every register file in DIR (Parquet or CSV, one per register) against the "
            "catalog, pseudonymise raw CPR numbers, and load them atomically into a DuckDB file. "
            "cpr is required; the other registers are optional (only the loaded ones are served)."
        ),
    )
    bld.add_argument(
        "dir", help="directory with one <register>.parquet or <register>.csv per register (cpr required)"
    )
    bld.add_argument("--db", required=True, help="DuckDB file to write (replaced atomically)")
    bld.add_argument("--catalog", help="catalog directory (default: DIR/catalog.json, else the packaged one)")
    bld.add_argument(
        "--pseudonym-key-file",
        help="file holding the pseudonymisation key (default: $SUNDSTAT_PSEUDONYM_KEY)",
    )
    bld.add_argument("--reject-dir", help="where reject files go (default: next to the database)")
    bld.add_argument(
        "--max-reject-rate",
        type=_reject_rate,
        metavar="RATE",
        help="largest share of any register's rows that may be rejected, e.g. 0.01 for 1%%; above it the "
        "build fails and the previous database stays (default: no person row, 0.001 of other registers)",
    )
    bld.add_argument(
        "--allow-rejects",
        action="store_true",
        help="load the good rows however many were rejected (the summary still lists them)",
    )
    bld.add_argument(
        "--memory-limit",
        help="DuckDB memory for the build, e.g. 4GB; larger sorts spill to disk next to the database "
        "(default: 4GB)",
    )
    bld.set_defaults(handler=_cmd_build)

    _add_later_commands(commands)
    return parser


def _add_later_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands whose implementation lives in other modules of the service."""
    from service import cli_commands

    cli_commands.register(commands)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sundstat`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

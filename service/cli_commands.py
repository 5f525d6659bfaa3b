"""CLI commands of the running service: serve, admin and ledger (filled in by the service)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service's commands to the ``sundstat`` parser."""

"""The ``dis-logging`` command line."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line and return its exit code."""
    parser = argparse.ArgumentParser(prog="dis-logging")
    parser.parse_args(argv)
    return 0

"""``python -m dis_logging.emulator``: run the local DIS + IAM emulator."""

from __future__ import annotations

import argparse
import sys

from dis_logging.emulator.cli import add_arguments, run


def main() -> int:
    """Parse the command line and run the emulator until it is stopped.

    Returns:
        The exit code of :func:`dis_logging.emulator.cli.run`: 0 after a stop, 1 on a start error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m dis_logging.emulator",
        description="Run a local Huawei Cloud DIS + IAM emulator for development and tests.",
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())

"""Run the ``dis-logging`` command line: ``python -m dis_logging``."""

from __future__ import annotations

import sys

from dis_logging.cli import main

if __name__ == "__main__":
    sys.exit(main())

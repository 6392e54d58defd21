"""Configure a DISHandler from an INI file with ``logging.config.fileConfig``::

python examples/file_config.py app-logs
"""

from __future__ import annotations

import logging
import logging.config
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    stream = argv[1] if len(argv) > 1 else "app-logs"
    ini = Path(__file__).with_name("file_config.ini")
    logging.config.fileConfig(ini, defaults={"stream": stream}, disable_existing_loggers=False)
    logger = logging.getLogger("orders")
    logger.info("configured from %s", ini.name)
    logger.warning("stock low", extra={"sku": "A-100", "left": 3})
    logging.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

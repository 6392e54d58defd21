"""argparse ``type=`` converters for bounded numbers, shared by the command lines.

Both ``dis_logging.cli`` and ``dis_logging.emulator.cli`` use them; the module imports nothing
else from the package, so the emulator stays independent of the client side.
"""

from __future__ import annotations

import argparse
from typing import Callable, Final, TypeVar

__all__ = [
    "MAX_SECONDS",
    "bounded",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "non_negative_seconds",
    "positive_float",
    "positive_int",
    "positive_seconds",
]

Number = TypeVar("Number", int, float)


def bounded(
    convert: Callable[[str], Number], accept: Callable[[Number], bool], requirement: str
) -> Callable[[str], Number]:
    """Return an argparse ``type=`` converter that parses a number and checks a bound.

    Args:
        convert: ``int`` or ``float``; its ``ValueError`` becomes a usage error.
        accept: the bound; a value for which it returns ``False`` (NaN fails every comparison)
            is a usage error.
        requirement: how the error states the bound, such as ``"at least 1"``.

    Returns:
        A function of the argument's text that returns the number.

    Raises:
        argparse.ArgumentTypeError: from the returned function, on text that is not a number
            or a number out of bounds.
    """

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value

    return parse


positive_int: Callable[[str], int] = bounded(int, lambda value: value >= 1, "at least 1")
non_negative_int: Callable[[str], int] = bounded(int, lambda value: value >= 0, "at least 0")
positive_float: Callable[[str], float] = bounded(float, lambda value: value > 0, "greater than 0")
non_negative_float: Callable[[str], float] = bounded(float, lambda value: value >= 0, "at least 0")
fraction: Callable[[str], float] = bounded(float, lambda value: 0 <= value <= 1, "within [0, 1]")

#: The longest wait a flag may ask for, in seconds (about 11.5 days); the handler's durations have
#: the same bound (``dis_logging.config.MAX_WAIT_SECONDS``). Longer ones overflow the platform's
#: timers, and infinity or NaN would make a wait end at once or never.
MAX_SECONDS: Final = 1_000_000.0
positive_seconds: Callable[[str], float] = bounded(
    float, lambda value: 0 < value <= MAX_SECONDS, "greater than 0 and at most 1000000 seconds"
)
non_negative_seconds: Callable[[str], float] = bounded(
    float, lambda value: 0 <= value <= MAX_SECONDS, "between 0 and 1000000 seconds"
)

"""Tests of dis_logging._argtypes, the bounded-number converters of the command lines."""

from __future__ import annotations

import argparse

import pytest

from dis_logging._argtypes import (
    fraction,
    non_negative_float,
    non_negative_int,
    non_negative_seconds,
    positive_float,
    positive_int,
    positive_seconds,
)


class TestBoundedNumbers:
    @pytest.mark.parametrize(
        ("convert", "text", "expected"),
        [
            (positive_int, "1", 1),
            (positive_int, "500", 500),
            (positive_float, "0.5", 0.5),
            (non_negative_float, "0", 0.0),
            (non_negative_int, "0", 0),
            (fraction, "0", 0.0),
            (fraction, "1", 1.0),
            (positive_seconds, "1000000", 1_000_000.0),
            (non_negative_seconds, "0", 0.0),
        ],
    )
    def test_numbers_within_bounds_are_returned(self, convert, text, expected):
        """A number within the bound comes back converted."""
        assert expected == convert(text)

    @pytest.mark.parametrize(
        ("convert", "text"),
        [
            (positive_int, "0"),
            (positive_int, "1.5"),
            (positive_int, "x"),
            (positive_float, "0"),
            (positive_float, "nan"),
            (non_negative_float, "-0.1"),
            (non_negative_int, "-1"),
            (non_negative_float, "nan"),
            (fraction, "1.01"),
            (fraction, "-0.5"),
            (positive_seconds, "0"),
            (positive_seconds, "inf"),
            (positive_seconds, "1e300"),
            (non_negative_seconds, "1000000.5"),
            (non_negative_seconds, "nan"),
        ],
    )
    def test_other_text_is_a_usage_error(self, convert, text):
        """Text that is not a number within the bound raises ArgumentTypeError naming the text."""
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
            convert(text)

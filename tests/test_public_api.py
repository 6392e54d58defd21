"""The package's exported names."""

from __future__ import annotations

import importlib

import dis_logging


class TestAll:
    def test_all_is_sorted(self):
        """`__all__` lists the public names in sorted order."""
        assert sorted(dis_logging.__all__) == list(dis_logging.__all__)

    def test_every_name_is_importable(self):
        """Every name in `__all__` is an attribute of the package."""
        missing = [name for name in dis_logging.__all__ if not hasattr(dis_logging, name)]
        assert [] == missing

    def test_version_is_a_string(self):
        """The package exposes its version as a dotted string."""
        assert all(part.isdigit() for part in dis_logging.__version__.split("."))

    def test_main_module_imports(self):
        """`python -m dis_logging` has a module to run."""
        assert callable(importlib.import_module("dis_logging.__main__").main)


class TestErrors:
    def test_config_error_names_the_field(self):
        """`ConfigError` is a `ValueError` whose message starts with the field name."""
        error = dis_logging.ConfigError("stream_name", "is required")
        assert (True, "stream_name: is required") == (isinstance(error, ValueError), str(error))

    def test_dis_error_str_carries_status_and_code(self):
        """A `DISError` renders its status, code and request id after the message."""
        from dis_logging.errors import ThrottledError

        error = ThrottledError("slow down", status=400, code="DIS.4303", request_id="r-1")
        assert "slow down status=400 code=DIS.4303 request_id=r-1" == str(error)
        assert error.retryable

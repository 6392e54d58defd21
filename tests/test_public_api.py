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


class TestTyping:
    def test_type_checker_flags_a_misspelled_option(self, tmp_path):
        """mypy, run on a user's file against the installed package, rejects a misspelled option."""
        import subprocess
        import sys

        user = tmp_path / "user_settings.py"
        user.write_text(
            "from dis_logging import DISClient, DISHandler\n"
            "from dis_logging.structlog_processor import DISProcessor\n"
            'DISHandler("s", flush_interval="1.5", max_batch_records="10", enabled=False)\n'
            'DISHandler("s", flush_intervall=1.0)\n'
            'DISClient("http://127.0.0.1:9", "p", token="t", request_timeout=3)\n'
            'DISProcessor(stream_name="s", overflw="block")\n',
            encoding="utf-8",
        )
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", "cache", user.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        errors = [line for line in result.stdout.splitlines() if ": error:" in line]
        assert [
            'user_settings.py:4: error: Unexpected keyword argument "flush_intervall" for '
            '"DISHandler"; did you mean "flush_interval"?  [call-arg]',
            'user_settings.py:6: error: Unexpected keyword argument "overflw" for '
            '"DISProcessor"; did you mean "overflow"?  [call-arg]',
        ] == errors

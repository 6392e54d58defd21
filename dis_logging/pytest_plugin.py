"""pytest plugin: fixtures that start a local DIS emulator for application tests."""

from __future__ import annotations

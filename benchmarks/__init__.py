"""Benchmarks for dis-logging: the figures P1-P7 of DESIGN.md, each measured against a baseline.

Run them all with ``python -m benchmarks`` (or ``python benchmarks/run.py``); add ``--quick`` for a
short run. See ``benchmarks/README.md`` for what each figure means.
"""

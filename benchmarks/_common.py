"""Helpers shared by the benchmark scripts: timing, fresh processes, Markdown tables."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def timed(function, *args, repeat: int = 1, **kwargs):
    """Run ``function`` ``repeat`` times; return (last result, best wall time in seconds)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def run_in_fresh_process(code: str, empty_cache: bool, compiledir: str | None = None) -> str:
    """Run ``code`` in a new interpreter and return what it printed. ``empty_cache`` gives it
    an empty PyTensor compile cache of its own; ``compiledir`` a given one (e.g. the cache a
    previous run filled, as a user's second process finds it)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if empty_cache or compiledir:
            env["PYTENSOR_FLAGS"] = f"compiledir={compiledir or cache}"
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        )
    return done.stdout


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_result(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    print(text)
    return path

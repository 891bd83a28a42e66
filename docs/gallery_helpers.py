"""How the gallery runs the scripts of ``examples/``: their order and their arguments.

Referenced by name from ``conf.py`` (sphinx-gallery imports them), so the configuration
stays picklable and Sphinx can cache it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Gallery order: the original study, then one example per feature, then real-data studies.
ORDER = [
    "zillow_study.py",
    "crossed_effects.py",
    "unseen_groups.py",
    "shrinkage.py",
    "intervals.py",
    "sleepstudy_slopes.py",
    "ames_pipeline.py",
]

#: Where the scripts that save figures write them during a build (not in the source tree).
OUTPUT_DIR = Path(__file__).resolve().parent / "_build" / "example_output"


def example_order(filename: str) -> tuple[int, str]:
    """Sort key: the position in ``ORDER``, then unlisted examples by name."""
    name = Path(filename).name
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def reset_argv(gallery_conf, script_vars) -> list[str]:
    """Command-line arguments of every example: scripts that save figures take
    ``--output-dir``; the others do not read their arguments. The path is relative to the
    example's folder, where the gallery runs it, so the printed paths name no machine."""
    example_dir = Path(script_vars["src_file"]).parent
    return ["--output-dir", os.path.relpath(OUTPUT_DIR, example_dir)]

"""Run All of solution notebooks, timed cell by cell, each from an empty output folder.

    python bench/lab_times.py 04 05 06 [--profile cpu] [--json out.json] [--keep folder]

What a student waits for: each lab is executed as in JupyterLab (one kernel, cells in
order) with `GAN_COURSE_OUT` pointing at a fresh folder, so nothing resumes from an
earlier run.  The metrics classifiers are cached beside the datasets, not in the output
folder; run a lab once before timing it to leave their one-time cost out.  Prints the
lab's total and its slowest cells (with the first line of each), and optionally writes
the timings to JSON and the executed notebooks to a folder.  A timing, not a test: run
it on a quiet machine and say its load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def run(lab: str, profile: str, top: int, keep: Path | None) -> dict:
    (path,) = sorted((ROOT / "solutions").glob(f"{lab}_*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as out:
        os.environ.update({"GAN_COURSE_PROFILE": profile, "GAN_COURSE_OUT": out})
        client = NotebookClient(nb, timeout=3600, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT / "solutions")}})
        times = []
        start = time.perf_counter()
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                begun = time.perf_counter()
                client.execute_cell(cell, index)
                if cell.cell_type == "code":
                    first = next((line for line in cell.source.splitlines() if line.strip()), "")
                    times.append({"cell": index, "s": round(time.perf_counter() - begun, 1), "first_line": first[:80]})
        total = time.perf_counter() - start
    if keep:  # the executed notebook, outputs and all, to read its figures and tables afterwards
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    print(f"lab {lab} ({profile}): {total:.0f} s Run All, load {os.getloadavg()[0]:.1f}", flush=True)
    for row in sorted(times, key=lambda r: -r["s"])[:top]:
        print(f"  cell {row['cell']:3d} {row['s']:7.1f} s  {row['first_line']}")
    return {"lab": lab, "profile": profile, "total_s": round(total, 1), "load_after": round(os.getloadavg()[0], 1),
            "cells": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="+", help="lab numbers, e.g. 04 05")
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--top", type=int, default=8, help="how many of the slowest cells to print")
    parser.add_argument("--json", help="also write the timings to this file")
    parser.add_argument("--keep", type=Path, help="write the executed notebooks to this folder")
    args = parser.parse_args()
    rows = [run(lab, args.profile, args.top, args.keep) for lab in args.labs]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())

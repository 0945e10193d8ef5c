"""Run every benchmark, print one table, write bench/results.json. Exit 1 if a target is missed."""

from __future__ import annotations

import importlib
import json
import platform
import shutil
import sys
import time
from pathlib import Path

from bench import Result
from worker.log import configure_logging

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    configure_logging("WARNING")
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    work = HERE / "work"
    results: list[tuple[str, Result]] = []
    for name in names:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        results += [(name, r) for r in module.run(work)]
        print(f"# {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    print(render(results))
    write_json(results)
    return 0 if all(r.passed is not False for _, r in results) else 1


def render(results: list[tuple[str, Result]]) -> str:
    rows = [("benchmark", "figure", "unit", "target", "result")]
    for _, r in results:
        verdict = {True: "pass", False: "FAIL", None: "-"}[r.passed]
        rows.append((r.name, f"{r.figure:,.2f}", r.unit, r.target or "-", verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(results: list[tuple[str, Result]]) -> None:
    data = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "results": [
            {"module": module, "name": r.name, "figure": r.figure, "unit": r.unit, "target": r.target,
             "passed": r.passed, "note": r.note}
            for module, r in results
        ],
    }
    (HERE / "results.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

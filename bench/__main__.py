"""Run every benchmark, print one table, write bench/results.json. Exit 1 if a target is missed."""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import Result

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Each module runs in a process of its own: a module's peak memory (and heap left behind)
    must not count against the next one's figures."""
    if argv[:1] == ["--child"]:
        return child(argv[1], Path(argv[2]))
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    results: list[tuple[str, Result]] = []
    for name in names:
        started = time.perf_counter()
        out = HERE / f".{name}.json"
        subprocess.run([sys.executable, "-m", "bench", "--child", name, str(out)], check=False)
        if out.exists():
            results += [(name, Result(**r)) for r in json.loads(out.read_text(encoding="utf-8"))]
            out.unlink()
        else:
            results.append((name, Result(f"{name}: did not finish", 0.0, "-", ">= 1")))
        print(f"# {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(render(results))
    write_json(results)
    return 0 if all(r.passed is not False for _, r in results) else 1


def child(name: str, out: Path) -> int:
    # Imported here, as each benchmark is: the parsing processes import this module again, and
    # must start as light as the product's own (worker/__main__.py).
    from worker.cli.base import tune_collector
    from worker.log import configure_logging

    configure_logging("WARNING")
    tune_collector()  # as the command does
    work = HERE / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        module = importlib.import_module(f"bench.{name}")
        found = module.run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.write_text(json.dumps([dataclasses.asdict(r) for r in found]), encoding="utf-8")
    return 0


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

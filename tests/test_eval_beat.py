"""`storywatch eval beat`: the config's storylines on a labelled beat feed (fixtures of our own)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Cli

CONFIG = """
[storage]
path = "sw.db"
[[storylines]]
id = "russia"
title = "North Korea and Russia"
keywords = ["Russia"]
aliases = [["North Korea", "DPRK", "Pyongyang"], ["Russia", "Moscow"]]
"""


def test_eval_beat_scores_yes_and_no_and_leaves_related_out(tmp_path: Path, write_config: Callable[[str], Path]) -> None:
    rows = []
    for n in range(30):  # a beat feed: every item names the DPRK
        rows.append({"id": f"b{n}", "published": f"2024-05-{n % 28 + 1:02d}T0{n % 9}:00:00Z", "feed": "wire",
                     "title": f"Farm Number {n} Reports Harvest", "text": "Pyongyang (KCNA) -- DPRK farmers worked.",
                     "labels": {"russia": "no"}})
    rows.append({"id": "y1", "published": "2024-06-02T00:00:00Z", "feed": "wire", "title": "Russian Delegation Arrives",
                 "text": "Pyongyang (KCNA) -- A delegation from Russia arrived in the DPRK.", "labels": {"russia": "yes"}})
    rows.append({"id": "r1", "published": "2024-06-03T00:00:00Z", "feed": "wire", "title": "Russian Film Week",
                 "text": "Pyongyang (KCNA) -- Films from Russia were shown.", "labels": {"russia": "related"}})
    data = tmp_path / "beat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    result = Cli(write_config(CONFIG))("eval", "beat", str(data), "--json")
    report = json.loads(result.output)
    assert report["storylines"] == [{"storyline": "russia", "yes": 1, "found": 1, "false_alarms": 0,
                                     "recall": 1.0, "precision": 1.0}]
    assert report["pooled"]["recall"] == 1.0

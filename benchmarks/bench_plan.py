"""Planning benchmark alone: read a 100,000-row file and ``plan()`` it, as ``bench_issue.py``
measures it (the median of 5 fresh subprocesses, and a traced run for memory), without the
issuing half. Prints one JSON object. Target: under 3 s and 300 MB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_issue import PLAN_ROWS, bench_planning


def main() -> None:
    out: dict[str, object] = {"benchmark": "plan"}
    out.update(bench_planning(PLAN_ROWS))
    out["targets"] = {"plan_seconds": 3.0, "plan_peak_mb": 300}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

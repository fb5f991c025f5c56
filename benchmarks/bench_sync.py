"""Sync benchmark: a full sync of 100,000 badges, then incremental syncs after 100 changes,
then a reconciliation after 100 deletions.

Prints one JSON object.  The baseline, in the same run, is the bare walk of the same
high-volume pages by the client without writing anything: ``full_vs_walk`` says what writing
the cache costs on top of reading Credly.  The reconciliation (an id-only pass over the same
export, ``badge_format=minimal``) is reported beside the full sync of the same run:
``reconcile_vs_full``.  Medians over the repeats.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import EmulatorProcess
from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID
from credly_ops.credly.client import CredlyClient
from credly_ops.reconcile import reconcile
from credly_ops.store import Store
from credly_ops.sync import sync

BADGES = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
CHANGES = 100
INCREMENTAL_RUNS = 5
DELETIONS = 100


def main() -> None:
    with EmulatorProcess(BADGES) as emulator, tempfile.TemporaryDirectory() as tmp:
        api = f"{emulator.url}/v1"
        store = Store(Path(tmp) / "bench.duckdb")
        with CredlyClient(base_url=api, org_id=DEMO_ORG_ID, token=DEMO_API_TOKEN) as client:
            started = time.perf_counter()
            walked = sum(len(page) for page in client.high_volume_pages())
            walk_seconds = time.perf_counter() - started

            full = sync(client, store, full=True)

            incremental = []
            next_id = 1  # odd ids are pending in the generated world
            for _ in range(INCREMENTAL_RUNS):
                for _ in range(CHANGES):
                    httpx.post(
                        f"{emulator.url}/_emulator/orgs/{DEMO_ORG_ID}/badges/b-{next_id:07d}/accept",
                        timeout=10,
                    ).raise_for_status()
                    next_id += 2
                incremental.append(sync(client, store))

            # deletions (GDPR erasures) an incremental sync cannot see; even ids were untouched
            deleted = [f"b-{i:07d}" for i in range(0, 2 * DELETIONS, 2)]
            for badge_id in deleted:
                client.delete(badge_id)
            after_deletions = sync(client, store)
            reconciled = reconcile(client, store)
    print(
        json.dumps(
            {
                "benchmark": "sync",
                "badges": BADGES,
                "walk_badges": walked,
                "walk_seconds": round(walk_seconds, 3),
                "full_seconds": round(full.seconds, 3),
                "full_pages": full.pages,
                "full_badges": full.badges,
                "full_vs_walk": round(full.seconds / walk_seconds, 2),
                "incremental_changes": CHANGES,
                "incremental_runs": INCREMENTAL_RUNS,
                "incremental_median_seconds": round(
                    statistics.median(r.seconds for r in incremental), 3
                ),
                "incremental_max_pages": max(r.pages for r in incremental),
                "incremental_changed": [r.changed for r in incremental],
                "incremental_vs_full": round(
                    statistics.median(r.seconds for r in incremental) / full.seconds, 4
                ),
                "deleted": len(deleted),
                "incremental_after_deletions_badges": after_deletions.badges,
                "reconcile_seconds": round(reconciled.seconds, 3),
                "reconcile_pages": reconciled.pages,
                "reconcile_seen": reconciled.seen,
                "reconcile_removed": reconciled.removed,
                "reconcile_vs_full": round(reconciled.seconds / full.seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()

"""A claimer process for the concurrency tests: claims until the queue is empty.

Usage: python -m tests.claimer DATABASE_URL START_AT BATCH
Prints one JSON line: the ids it claimed. Each claimed job is finished at once.
"""

from __future__ import annotations

import json
import sys
import time

from contact_import.domain.job import JobStatus
from contact_import.store.db import create_db_engine
from contact_import.store.jobs import JobStore, new_worker_name


def main() -> None:
    url, start_at, batch = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    store = JobStore(create_db_engine(url), lease_seconds=60)
    name = new_worker_name()
    claimed: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))  # all processes start claiming together
    empty_rounds = 0
    while empty_rounds < 3:
        jobs = store.claim(name, batch).jobs
        empty_rounds = 0 if jobs else empty_rounds + 1
        for job in jobs:
            claimed.append(str(job.id))
            store.finish(job.lease, JobStatus.COMPLETED)
    print(json.dumps(claimed))


if __name__ == "__main__":
    main()

"""The Postgres tests that write pages and claim jobs, run again through PgBouncer in
transaction mode (``database_url`` here is a pooled URL with ``?pgbouncer=true``).

They execute the same statements far more than psycopg's prepare threshold (5) on each
connection, and the page write's ``executemany`` would prepare at once: with server-side
prepared statements on, they fail with "prepared statement … already exists / does not exist".
"""

from __future__ import annotations

import pytest

from tests.integration.test_concurrency import (
    test_processes_claiming_at_once_never_hold_the_same_job,
)
from tests.integration.test_import_flow import (
    test_cancel_of_a_waiting_job_is_immediate_and_retry_resumes,
    test_cancel_stops_a_running_import_at_a_page_boundary,
    test_expired_lease_is_reclaimed_and_completes_exactly,
    test_full_import_has_exact_counts,
    test_one_active_job_per_user_and_provider,
    test_second_import_of_the_same_book_is_all_skipped,
    test_ticks_with_a_small_budget_finish_a_large_import,
    test_transient_provider_errors_back_off_then_fail_after_max_attempts,
)
from tests.integration.test_job_store import (
    test_a_lost_lease_fences_every_write,
    test_concurrent_starts_create_one_job,
)
from tests.integration.test_page_statements import (
    test_statements_per_page_do_not_grow_with_the_page,
)

pytestmark = pytest.mark.postgres

__all__ = [
    "test_a_lost_lease_fences_every_write",
    "test_cancel_of_a_waiting_job_is_immediate_and_retry_resumes",
    "test_cancel_stops_a_running_import_at_a_page_boundary",
    "test_concurrent_starts_create_one_job",
    "test_expired_lease_is_reclaimed_and_completes_exactly",
    "test_full_import_has_exact_counts",
    "test_one_active_job_per_user_and_provider",
    "test_processes_claiming_at_once_never_hold_the_same_job",
    "test_second_import_of_the_same_book_is_all_skipped",
    "test_statements_per_page_do_not_grow_with_the_page",
    "test_ticks_with_a_small_budget_finish_a_large_import",
    "test_transient_provider_errors_back_off_then_fail_after_max_attempts",
]

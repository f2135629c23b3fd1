"""What a thread busy in Python costs another thread's database round trips, by switch interval.

Prints figures; it is not a test. Usage:

    .venv/bin/python bench/gil_handoff.py [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

The importer's thread waits on Postgres while its helper thread parses and normalizes the next
page in Python (``runner.listing``). Each answer the importer's thread gets must take the GIL
back from the helper, which CPython hands over when the switch interval has passed (5 ms by
default). This times the page write's first statement (BEGIN, then ``pg_advisory_xact_lock``:
two round trips) alone, beside a thread busy in Python, and beside it again at the importer's
interval (``runner.interpreter.GIL_SWITCH_INTERVAL``), each at the median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from sqlalchemy import Engine, create_engine, func, select, text

from contact_import.runner.interpreter import GIL_SWITCH_INTERVAL


def _first_statement_ms(engine: Engine, rounds: int) -> float:
    """Median milliseconds of a transaction's first statement (its BEGIN included)."""
    times = []
    for _ in range(rounds):
        with engine.begin() as conn:
            started = time.perf_counter()
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("bench", 0))))
            times.append(time.perf_counter() - started)
            conn.execute(text("SELECT 1"))
    return statistics.median(times) * 1000


def _busy(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))  # pure Python: gives the GIL up only when asked


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    engine = create_engine(args.pg)
    default = sys.getswitchinterval()
    alone = _first_statement_ms(engine, args.rounds)
    stop = threading.Event()
    busy = threading.Thread(target=_busy, args=(stop,), daemon=True)
    busy.start()
    try:
        beside_default = _first_statement_ms(engine, args.rounds)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        beside_lowered = _first_statement_ms(engine, args.rounds)
    finally:
        stop.set()
        busy.join()
        sys.setswitchinterval(default)
        engine.dispose()
    rows = [
        ("alone", alone),
        (f"beside a busy thread, switch {default * 1000:.1f} ms (default)", beside_default),
        (
            f"beside a busy thread, switch {GIL_SWITCH_INTERVAL * 1000:.1f} ms (importer)",
            beside_lowered,
        ),
    ]
    print(f"first statement of a transaction (BEGIN + advisory lock), median of {args.rounds}:")
    for label, ms in rows:
        print(f"  {label:<52} {ms:7.2f} ms")
    print(f"  default / importer's interval: {beside_default / beside_lowered:.1f}x")


if __name__ == "__main__":
    main(sys.argv[1:])

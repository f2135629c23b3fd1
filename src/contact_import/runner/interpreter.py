"""Two interpreter settings for a process that runs imports; the importer applies them.

Both are process-wide, and both only ever move one way (a process that already set them
further keeps its own):

* **The GIL switch interval**, lowered to 0.5 ms when pages are fetched ahead. The helper
  thread (``runner.listing``) parses and normalizes in Python while the importer's thread
  waits on the database, and each answer the importer's thread gets must take the GIL back
  from the helper. CPython hands it over after the switch interval, 5 ms by default, and a
  statement can wait for it more than once (its BEGIN is a round trip of its own): beside a
  thread busy in Python, a page's first statement took 16 ms against 0.25 ms alone, and
  1.5 ms at 0.5 ms (``bench/gil_handoff.py``). The remedy the interpreter itself offers for
  I/O-bound threads held up by busy ones; busy threads switch a little more often.
* **The cyclic garbage collector's first threshold**, raised to 25,000 allocations. A page of
  1,000 contacts allocates a few hundred thousand containers (the parsed provider page, the
  normalized contacts, the plan), nearly all freed by reference counting, but some live
  for a while: the JSON of a 1,000-contact Google page alone is 13,000 containers, its
  contacts 6,000 more, kept while the page before is planned and written. At CPython's
  default (700) a 20,000-contact first import ran 686 young, 63 middle and 6 full
  collections: 0.43 to 0.48 s of a 2.1 s import, each with the GIL held. At 10,000 a
  100,000-contact first import still ran 181 young, 17 middle and 2 full collections (0.61
  to 0.97 s), once the page ahead was parsed beside the page write; at 25,000, 6, 1 and 1
  (0.12 to 0.22 s). Cyclic garbage, which only the collector frees, lives longer: peak RSS
  at 100,000 contacts 1.10 to 1.12x the 1,000-contact peak (1.04x at 700). At 50,000 it was
  1.43x: there is cyclic garbage to free, and the threshold must stay near a page's size.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["GC_YOUNG_THRESHOLD", "GIL_SWITCH_INTERVAL", "tune_for_imports"]

GIL_SWITCH_INTERVAL = 0.0005  # seconds
GC_YOUNG_THRESHOLD = 25_000  # allocations between collections of the youngest generation


def tune_for_imports(*, pipeline: bool) -> None:
    """Raise the collector's first threshold; with ``pipeline``, lower the switch interval."""
    young, middle, oldest = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:  # 0: the process turned automatic collection off
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
    if pipeline and sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)

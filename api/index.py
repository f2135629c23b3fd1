"""Vercel's entrypoint: the ASGI ``app``, configured from the environment.

``vercel.json`` rewrites every path here, so the app sees the original one
(``/api/cron/process-imports``, ``/api/v1/…``, ``/imports/…``). Nothing touches the database
at import time: the runtime is built by the app's lifespan or, if the host skips it, on the
first request.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The package lives in src/; when the builder installs only the dependencies, import it from
# the checkout that was uploaded with this function.
_SRC = Path(__file__).resolve().parent.parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from contact_import.logs import configure_logging  # noqa: E402
from contact_import.settings import Settings  # noqa: E402
from contact_import.web.app import create_app  # noqa: E402

settings = Settings()
configure_logging("info", settings.log_format)
app = create_app(settings)

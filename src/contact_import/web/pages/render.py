"""The pages' HTML: templates filled with escaped values, and the headers they are served with.

Job fields are data (an error message may hold anything a provider said), so every value is
escaped before it reaches the markup; the only unescaped pieces are attributes built here from
integers. The script updates the page through ``textContent`` for the same reason.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from string import Template

from contact_import.providers.registry import PROVIDER_NAMES, provider_label
from contact_import.web.pages.assets import find_asset, template
from contact_import.web.pages.progress_view import StatusView
from contact_import.web.schemas import JobOut

__all__ = ["FINAL_STATUSES", "home_page", "page_headers", "status_page"]

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

_HEADLINES = {
    "fetching": "Waiting to start…",
    "processing": "Importing…",
    "completed": "Import complete",
    "failed": "Import failed",
    "cancelled": "Import cancelled",
}

# No inline script or style anywhere: the pages load only their own static files and fetch
# only their own origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def page_headers(*, form_targets: Iterable[str] = ()) -> dict[str, str]:
    """Headers of an HTML page; ``form_targets``: origins its forms may lead to (redirects too)."""
    targets = " ".join(["'self'", *form_targets]) if form_targets else "'none'"
    return {
        "Content-Security-Policy": f"{_CSP}; form-action {targets}",
        # The status page's URL carries its token: never send it on to another site.
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def status_page(view: StatusView, progress_url: str, *, base: str = "") -> str:
    """The live status page of ``view.job``; its script polls ``progress_url``. ``base``: the
    path the routes are mounted at (``Settings.mount_path``), before every link."""
    text = _status_text(view.job, progress_url) | _pace_text(view)
    markup = _bar_markup(view.job) | _hidden_markup(view)
    return _fill("status.html", text, markup, base)


def _pace_text(view: StatusView) -> dict[str, str]:
    pace = view.pace
    return {
        "waiting": pace.waiting,
        "rate": pace.rate,
        "eta": pace.eta,
        "account_email": view.account_email or "",
    }


def _hidden_markup(view: StatusView) -> dict[str, str]:
    """Which optional parts start hidden (the script shows and hides them the same way)."""
    pace = view.pace

    def hidden(when: bool) -> str:
        return " hidden" if when else ""

    return {
        "counts_hidden": hidden(bool(pace.waiting)),
        "waiting_hidden": hidden(not pace.waiting),
        "pace_hidden": hidden(not (pace.rate or pace.eta)),
        "account_hidden": hidden(not view.account_email),
    }


def home_page(*, default_contacts: int, max_contacts: int, base: str = "") -> str:
    """The development home page: start a sandbox import with any of the providers."""
    text = {
        "default_contacts": str(default_contacts),
        "max_contacts": str(max_contacts),
        "start_url": _dev_start_url(base, PROVIDER_NAMES[0]),
    }
    buttons = "\n      ".join(_start_button(base, name) for name in PROVIDER_NAMES)
    return _fill("home.html", text, {"buttons": buttons}, base)


def _dev_start_url(base: str, provider: str) -> str:
    return f"{base}/dev/start/{provider}"


def _start_button(base: str, provider: str) -> str:
    """One provider's button of the home page's form (registry names and labels, escaped)."""
    name, label = html.escape(provider, quote=True), html.escape(provider_label(provider))
    url = html.escape(_dev_start_url(base, provider), quote=True)
    button = f'<button id="start-{name}" type="submit" formaction="{url}">'
    return f"{button}Import from {label}</button>"


def _status_text(job: JobOut, progress_url: str) -> dict[str, str]:
    provider = provider_label(job.provider)
    percent = _percent(job)
    return {
        "title": f"{percent} · {provider} import" if percent else f"{provider} import",
        "progress_url": progress_url,
        "card_class": f"card done-{job.status}" if job.status in FINAL_STATUSES else "card",
        "provider": provider,
        "status": job.status,
        "headline": _HEADLINES.get(job.status, job.status),
        "processed": f"{job.processed_contacts:,}",
        "total": f"{job.total_contacts:,}",
        "percent": percent,
        "created": f"{job.created_contacts:,}",
        "updated": f"{job.updated_contacts:,}",
        "skipped": f"{job.skipped_contacts:,}",
        "failed": f"{job.failed_contacts:,}",
        "error": job.error_message or "",
        "attempts": f"{job.attempts:,}",
        "max_attempts": f"{job.max_attempts:,}",
        "live": "Final" if job.status in FINAL_STATUSES else "Updating live",
    }


def _percent(job: JobOut) -> str:
    if job.total_contacts > 0:
        done = min(job.processed_contacts, job.total_contacts)
        return f"{100 * done // job.total_contacts}%"
    return "100%" if job.status == "completed" else ""


def _bar_markup(job: JobOut) -> dict[str, str]:
    """The bar's attributes (integers only); no ``value`` makes it indeterminate."""
    if job.total_contacts > 0:
        bar_max, value = job.total_contacts, min(job.processed_contacts, job.total_contacts)
    elif job.status == "completed":
        bar_max, value = 1, 1
    else:
        bar_max, value = 1, None
    return {
        "bar_max": str(int(bar_max)),
        "bar_value": "" if value is None else f' value="{int(value)}"',
        "error_hidden": "" if job.error_message else " hidden",
    }


def _fill(name: str, text: Mapping[str, str], trusted_markup: Mapping[str, str], base: str) -> str:
    """``templates/<name>`` with ``text`` escaped, ``trusted_markup`` as is, and asset URLs."""
    values = {key: html.escape(value, quote=True) for key, value in text.items()}
    return Template(template(name)).substitute(
        values,
        **trusted_markup,
        css_url=_asset_url(base, "status.css"),
        js_url=_asset_url(base, "status.js"),
        icon_url=_asset_url(base, "favicon.svg"),
    )


def _asset_url(base: str, name: str) -> str:
    asset = find_asset(name)
    assert asset is not None, name  # the names are constants of this package
    return html.escape(base + asset.url, quote=True)

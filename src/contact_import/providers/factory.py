"""Build the right ContactSource for a job from its provider name and grant."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from contact_import.errors import AccessRevoked, RequestRejected
from contact_import.providers.base import ContactSource
from contact_import.providers.google import GoogleContactsSource
from contact_import.providers.microsoft import MicrosoftContactsSource
from contact_import.settings import Settings
from contact_import.store.grants import GrantStore
from contact_import.store.jobs import Job

__all__ = ["PROVIDERS", "SourceFactory"]

PROVIDERS = ("google", "microsoft")


class SourceFactory:
    """Turns a job into a ready-to-use provider client. Base URLs come from settings only."""

    def __init__(self, settings: Settings, client: httpx.Client, grants: GrantStore) -> None:
        self._settings = settings
        self._client = client
        self._grants = grants

    def __call__(self, job: Job, *, sleep: Callable[[float], None] = time.sleep) -> ContactSource:
        """``sleep`` is how the client waits between retries (the importer's keeps the lease)."""
        grant = self._grants.get(job.grant_id)
        if not grant.access_token:
            raise AccessRevoked(f"no {job.provider} access token — reconnect your account")
        if job.provider == "google":
            return GoogleContactsSource(
                self._client,
                api_url=self._settings.google_people_api_url,
                access_token=grant.access_token,
                page_size=self._settings.page_size,
                max_retries=self._settings.provider_max_retries,
                sleep=sleep,
            )
        if job.provider == "microsoft":
            return MicrosoftContactsSource(
                self._client,
                api_url=self._settings.microsoft_graph_api_url,
                access_token=grant.access_token,
                page_size=self._settings.page_size,
                max_retries=self._settings.provider_max_retries,
                sleep=sleep,
            )
        raise RequestRejected(f"unknown provider {job.provider!r}")

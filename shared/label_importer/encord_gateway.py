"""The one door to Encord: the SDK client (one per warm container), projects, and which errors are worth retrying.

The SSH key comes from Secrets Manager through Powertools Parameters (cached), never from code, events or
logs. The SDK's 180 s timeouts are cut to the configured value so one hung request cannot eat a whole
invocation, and its own retries are off: urllib3 would sleep out any Retry-After without knowing the time
left, so retrying is the caller's (retries.py), who does.
"""

from __future__ import annotations

import time
from functools import cache

import requests
from aws_lambda_powertools.utilities import parameters
from encord import EncordUserClient, Project
from encord.exceptions import (
    AnswerDictionaryError,
    AuthenticationError,
    AuthorisationError,
    CorruptedLabelError,
    EncordException,
    FeatureDoesNotExistError,
    InvalidArgumentsError,
    LabelRowError,
    OperationNotAllowed,
    PayloadTooLargeError,
    ResourceNotFoundError,
)
from encord.http.constants import RequestsSettings

from label_importer.settings import Settings

SECRET_MAX_AGE_SECONDS = 300
PROJECT_MAX_AGE_SECONDS = 300

PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    AnswerDictionaryError,
    AuthenticationError,
    AuthorisationError,
    CorruptedLabelError,
    FeatureDoesNotExistError,
    InvalidArgumentsError,
    LabelRowError,
    OperationNotAllowed,
    PayloadTooLargeError,
    ResourceNotFoundError,
)
"""Encord rejected the content, the key or the resource itself: sending the same request again cannot succeed."""


def is_transient(error: Exception) -> bool:
    """Throttling, 5xx, timeouts and dropped connections: the same request may succeed later."""
    if isinstance(error, PERMANENT_ERRORS):
        return False
    return isinstance(error, EncordException | requests.RequestException | ConnectionError | TimeoutError)


class EncordKeyUnusable(Exception):
    """The secret is missing, unreadable or not an Encord key. The message never contains the secret: the SDK's
    own error for a wrong key type quotes the whole key, so it is never passed on."""


@cache
def _client(secret_id: str, domain: str, timeout: int) -> EncordUserClient:
    try:
        key = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        raise EncordKeyUnusable(f"the Encord key could not be read from secret {secret_id!r}: {error}") from None
    if not isinstance(key, str):
        raise EncordKeyUnusable(f"secret {secret_id!r} holds binary data; it must hold the key as text")
    try:
        return EncordUserClient.create_with_ssh_private_key(
            ssh_private_key=key,
            domain=domain,
            requests_settings=RequestsSettings(
                max_retries=0, connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout
            ),
        )
    except (ValueError, TypeError):
        raise EncordKeyUnusable(
            f"secret {secret_id!r} is not an Ed25519 private key in OpenSSH format "
            "(-----BEGIN OPENSSH PRIVATE KEY-----)"
        ) from None


def encord_client(settings: Settings) -> EncordUserClient:
    return _client(settings.encord_secret_id, settings.encord_domain, settings.encord_timeout_seconds)


_projects: dict[tuple[str, str], tuple[float, Project]] = {}


def open_project(settings: Settings, project_hash: str) -> Project:
    """The project with its ontology, reused for a few minutes by a warm container.

    Fetching it costs two requests; per chunk that would more than double the round trips of an import.
    """
    key = (settings.encord_domain, project_hash)
    cached = _projects.get(key)
    if cached is not None and time.monotonic() - cached[0] < PROJECT_MAX_AGE_SECONDS:
        return cached[1]
    project = encord_client(settings).get_project(project_hash)
    _projects[key] = (time.monotonic(), project)
    return project

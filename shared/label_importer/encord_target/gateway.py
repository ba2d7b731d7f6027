"""The one door to Encord: the SDK client (one per key), projects, and which errors are worth retrying.

The SSH key comes from Secrets Manager through Powertools Parameters, never from code, events or logs. It is
read on every use, which Powertools answers from memory for SECRET_MAX_AGE_SECONDS, so a rotated key reaches a
warm container within that time; a caller whose key Encord refuses asks `key_refused` to look at once. A client
(and the projects opened through it) is kept per key, because building one parses the key and a project costs
two requests. The SDK's 180 s timeouts are cut to the configured value so one hung request cannot eat a whole
invocation, and its own retries are off: urllib3 would sleep out any Retry-After without knowing the time
left, so retrying is the caller's (retries.py), who does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

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

from label_importer.runtime.settings import Settings

T = TypeVar("T")

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


def _read_key(settings: Settings, *, force_fetch: bool = False) -> str:
    secret_id = settings.encord_secret_id
    try:
        key = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch)
    except parameters.exceptions.GetParameterError as error:
        raise EncordKeyUnusable(f"the Encord key could not be read from secret {secret_id!r}: {error}") from None
    if not isinstance(key, str):
        raise EncordKeyUnusable(f"secret {secret_id!r} holds binary data; it must hold the key as text")
    return key


def _digest(key: str) -> str:
    """Which key a client was built with, without keeping (or ever showing) the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_client(settings: Settings, key: str) -> EncordUserClient:
    timeout = settings.encord_timeout_seconds
    try:
        return EncordUserClient.create_with_ssh_private_key(
            ssh_private_key=key,
            domain=settings.encord_domain,
            requests_settings=RequestsSettings(
                max_retries=0, connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout
            ),
        )
    except (ValueError, TypeError):
        raise EncordKeyUnusable(
            f"secret {settings.encord_secret_id!r} is not an Ed25519 private key in OpenSSH format "
            "(-----BEGIN OPENSSH PRIVATE KEY-----)"
        ) from None


@dataclass
class _Connection:
    """A client for one key, and the projects opened through it (they hold that client, so they go with it)."""

    key_digest: str
    client: EncordUserClient
    projects: dict[str, tuple[float, Project]] = field(default_factory=dict)


_connections: dict[tuple[str, str, int], _Connection] = {}
"""By (secret, domain, timeout): the connection for the key the secret held when last read. A new key replaces
it, so a rotated-out key's client and projects are dropped rather than kept for the container's life."""


def _slot(settings: Settings) -> tuple[str, str, int]:
    return settings.encord_secret_id, settings.encord_domain, settings.encord_timeout_seconds


def _connection(settings: Settings) -> _Connection:
    key = _read_key(settings)
    digest = _digest(key)
    connection = _connections.get(_slot(settings))
    if connection is None or connection.key_digest != digest:
        connection = _Connection(digest, _new_client(settings, key))
        _connections[_slot(settings)] = connection
    return connection


def encord_client(settings: Settings) -> EncordUserClient:
    """The client for the key the secret holds now (as Powertools last read it)."""
    return _connection(settings).client


def open_project(settings: Settings, project_hash: str) -> Project:
    """The project with its ontology, reused for a few minutes by a warm container while the key stays the same.

    Fetching it costs two requests; per chunk that would more than double the round trips of an import.
    """
    connection = _connection(settings)
    cached = connection.projects.get(project_hash)
    if cached is not None and time.monotonic() - cached[0] < PROJECT_MAX_AGE_SECONDS:
        return cached[1]
    project = connection.client.get_project(project_hash)
    connection.projects[project_hash] = (time.monotonic(), project)
    return project


def key_refused(settings: Settings) -> bool:
    """Encord just refused the key (AuthenticationError or AuthorisationError): has the secret been rotated since?

    The secret is read again now rather than when Powertools' copy expires, because the usual reason a key that
    worked is refused is that it was rotated: the old key revoked, the new one already in the secret. The
    refused key's client and projects are dropped either way. True means the secret now holds another key, so
    the caller should try once more (`encord_client` and `open_project` then use it); False means the refused
    key is still the secret's, so it really is refused and the caller fails the job. The refused key is taken
    to be the one last used for these settings, which holds because a container serves one invocation at a
    time; with none cached (a cold start since) the answer is True, as one more try is the cheap mistake.
    Raises EncordKeyUnusable when the secret can no longer be read or holds no text.
    """
    refused = _connections.pop(_slot(settings), None)
    current = _digest(_read_key(settings, force_fetch=True))
    return refused is None or refused.key_digest != current


def retried_with_a_rotated_key(call: Callable[[], T], key_refused: Callable[[], bool]) -> T:
    """`call()`, and once more if Encord refuses the key but the secret, read again, holds another one (see
    `key_refused`): a rotated key works at once. A key that is still the secret's stays refused: raised."""
    try:
        return call()
    except (AuthenticationError, AuthorisationError):
        if not key_refused():
            raise
        return call()

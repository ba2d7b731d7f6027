"""How every command fails: an exception, anywhere in the chain of causes, said as one line that tells the user
what to check or set, with its exit code; anything not foreseen is a bug, whose traceback goes to a file.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from encord import exceptions as encord

from label_importer.model.leases import DataUnitsBusy
from label_importer.runtime.settings import ENCORD_PUBLIC_API, ConfigurationError
from label_importer.store import aws
from label_importer.store.dead_letters import RedriveIncomplete
from label_importer_cli.exit_codes import ExitCode, SetupError, UsageError

_LINE_CHARACTERS = 400
"""A message quoted from a library (Encord's carry a whole request context) is cut to this, to stay one line."""

RUN_AGAIN = (
    "running the same command again is safe: rows already recorded are skipped, and labels have deterministic "
    "hashes, so none is added twice"
)


Explain = Callable[[BaseException, argparse.Namespace | None], str | None]


@dataclass(frozen=True)
class Failure:
    """One kind of failure: the exceptions that are it (anywhere in the chain of causes), its exit code, and the
    line that says what to do; `explain` may decline (None) when the kind means nothing for this command.

    A kind given as "module.Class" is one of the layer's own that this module must not import: loading the rollback
    service or the Encord gateway loads Powertools, which reads its environment once, before `import` has set it.
    Such a class is looked up only if its module is loaded, which it is whenever one of its exceptions exists.
    """

    kinds: tuple[type[BaseException] | str, ...]
    exit_code: ExitCode
    explain: Explain

    def matches(self, error: BaseException) -> bool:
        return any(isinstance(error, kind) for kind in map(_loaded_class, self.kinds) if kind is not None)


def _loaded_class(kind: type[BaseException] | str) -> type[BaseException] | None:
    if not isinstance(kind, str):
        return kind
    module, _, name = kind.rpartition(".")
    return getattr(sys.modules.get(module), name, None)


def _interrupted(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"interrupted: {RUN_AGAIN}"


def _quoted(error: BaseException, args: argparse.Namespace | None) -> str:
    return str(error)


def _no_region(error: BaseException, args: argparse.Namespace | None) -> str | None:
    if _aws_resources(args) is None:
        return None
    return (
        "no AWS region: set AWS_DEFAULT_REGION to the stack's region, e.g. AWS_DEFAULT_REGION=eu-west-1 (boto3 reads "
        "AWS_DEFAULT_REGION, not AWS_REGION), or `region` in your AWS profile"
    )


def _no_credentials(error: BaseException, args: argparse.Namespace | None) -> str | None:
    if _aws_resources(args) is None:
        return None
    return (
        f"no usable AWS credentials ({_one_line(str(error))}): set AWS_PROFILE (after `aws configure` or "
        "`aws sso login`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )


def _aws_unreachable(error: BaseException, args: argparse.Namespace | None) -> str | None:
    if _aws_resources(args) is None:
        return None
    return (
        f"cannot reach AWS ({_one_line(str(error))}): check the network, AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL "
        "if it is set"
    )


_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AccessDeniedException",
    }
)


def _aws_refused(error: BaseException, args: argparse.Namespace | None) -> str | None:
    resources, refused = _aws_resources(args), aws.refusal(error)
    if resources is None or refused is None:
        return None
    code, message, operation = refused.code, _one_line(refused.message), refused.operation
    if code in _CREDENTIAL_CODES:
        return (
            f"AWS refused {operation} ({code}: {message}): check the credentials (AWS_PROFILE or the access keys) and "
            f"that they may call {operation} on {resources}"
        )
    return (
        f"AWS: {operation} failed ({code}: {message}): check {resources}, and AWS_DEFAULT_REGION (the stack's region)"
    )


def _aws_resources(args: argparse.Namespace | None) -> str | None:
    """What a command finds in AWS, as the user names it; None for the local import, whose AWS is in-process."""
    return getattr(args, "aws_resources", None)


def _configuration(error: BaseException, args: argparse.Namespace | None) -> str:
    return (
        f"{error}: set the functions' settings as the stack has them (JOBS_TABLE_NAME = stack output JobsTableName, "
        "ENCORD_SECRET_ID = the key's secret ARN; ENCORD_DOMAIN if not the public API)"
    )


def _key_unusable(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"{error}: check ENCORD_SECRET_ID, and that these AWS credentials may read the secret"


def _encord_unreachable(error: BaseException, args: argparse.Namespace | None) -> str:
    return (
        f"cannot reach Encord at {_encord_domain(error, args)} ({_network_reason(error)}): check the network "
        f"(proxy, VPN, firewall), or {_domain_option(args)} if that is not your Encord API"
    )


def _encord_refused_key(error: BaseException, args: argparse.Namespace | None) -> str:
    key_file = getattr(args, "ssh_key_file", None)
    key = f"the key in {key_file}" if key_file else "the key"
    return (
        f"Encord at {_encord_domain(error, args)} refused {key} ({type(error).__name__}): add its public key to your "
        f"Encord user (Settings > Public keys), and check that {_domain_option(args)} is your Encord region's API"
    )


def _encord_refused_project(error: BaseException, args: argparse.Namespace | None) -> str:
    given = getattr(args, "project", None)
    project, check = (f"project {given}", "--project") if given else ("the job's project", "the job's project hash")
    return (
        f"Encord at {_encord_domain(error, args)} has no {project} that this key can open ({type(error).__name__}): "
        f"check {check}, and that the key's Encord user is a member of the project"
    )


def _encord_failed(error: BaseException, args: argparse.Namespace | None) -> str:
    message = error.message if isinstance(error, encord.EncordException) else str(error)
    return (
        f"Encord at {_encord_domain(error, args)} failed ({type(error).__name__}: {without_context(message)}): "
        f"try again later; {RUN_AGAIN}"
    )


def _busy(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"not finished: {error}; {RUN_AGAIN}"


def _redrive_incomplete(error: BaseException, args: argparse.Namespace | None) -> str:
    return f"redrive stopped: {error}; running it again is safe (a chunk sent twice imports nothing twice)"


FAILURES: tuple[Failure, ...] = (
    Failure((KeyboardInterrupt,), ExitCode.INTERRUPTED, _interrupted),
    Failure((UsageError,), ExitCode.USAGE, _quoted),
    Failure(
        ("label_importer.services.rollback.CannotRollBack",),
        ExitCode.USAGE,
        lambda error, args: f"cannot roll back: {error}",
    ),
    Failure((SetupError,), ExitCode.ENVIRONMENT, _quoted),
    Failure((ConfigurationError,), ExitCode.ENVIRONMENT, _configuration),
    Failure(aws.NO_REGION, ExitCode.ENVIRONMENT, _no_region),
    Failure(aws.NO_CREDENTIALS, ExitCode.ENVIRONMENT, _no_credentials),
    Failure(aws.UNREACHABLE, ExitCode.ENVIRONMENT, _aws_unreachable),
    Failure(("label_importer.encord_target.gateway.EncordKeyUnusable",), ExitCode.ENVIRONMENT, _key_unusable),
    Failure(aws.REFUSED, ExitCode.ENVIRONMENT, _aws_refused),
    Failure(
        (requests.ConnectionError, requests.Timeout, encord.TimeOutError), ExitCode.ENVIRONMENT, _encord_unreachable
    ),
    Failure((encord.AuthenticationError,), ExitCode.ENVIRONMENT, _encord_refused_key),
    Failure((encord.AuthorisationError, encord.ResourceNotFoundError), ExitCode.ENVIRONMENT, _encord_refused_project),
    Failure((encord.EncordException,), ExitCode.ENVIRONMENT, _encord_failed),
    Failure((DataUnitsBusy,), ExitCode.ENVIRONMENT, _busy),
    Failure((RedriveIncomplete,), ExitCode.ENVIRONMENT, _redrive_incomplete),
)
"""Checked in order, the first that explains any exception in the chain wins; anything else is a bug (exit 1)."""


def explain(error: BaseException, args: argparse.Namespace | None) -> tuple[str, ExitCode]:
    """The one line to print for `error`, and the exit code: how every command fails, in one place."""
    chain = list(_chain(error))
    for failure in FAILURES:
        for link in chain:
            if failure.matches(link) and (line := failure.explain(link, args)) is not None:
                return _one_line(line, limit=None), failure.exit_code
    where = _write_traceback(error, args)
    return (
        f"internal error: {type(error).__name__}: {_one_line(str(error))} (a bug; the full traceback is in {where}, "
        "please include it when you report it)",
        ExitCode.INTERNAL_ERROR,
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and its causes, as a traceback would show them (`raise ... from None` ends the chain)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _write_traceback(error: BaseException, args: argparse.Namespace | None) -> Path:
    """The traceback goes to a file, never the terminal: into the reports folder of an import, else a temp file."""
    text = "".join(traceback.format_exception(error))
    name = f"label-importer-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    out = getattr(args, "out", None)
    folders = [Path(out)] if out else []
    for folder in [*folders, Path(tempfile.gettempdir())]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return (folder / name).resolve()
        except OSError:
            continue
    return Path("(nowhere: no folder could be written)")


def _one_line(text: str, limit: int | None = _LINE_CHARACTERS) -> str:
    line = " ".join(text.split())
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"


def _encord_domain(error: BaseException, args: argparse.Namespace | None) -> str:
    """The API the failed request went to, from the request itself if it says, else from the settings."""
    for link in _chain(error):
        url = getattr(getattr(link, "request", None), "url", None)
        if isinstance(url, str) and url:
            parts = urlsplit(url)
            return f"{parts.scheme}://{parts.netloc}"
    return getattr(args, "domain", None) or os.environ.get("ENCORD_DOMAIN") or ENCORD_PUBLIC_API


def _domain_option(args: argparse.Namespace | None) -> str:
    return "--domain (or ENCORD_DOMAIN)" if hasattr(args, "domain") else "ENCORD_DOMAIN"


def _network_reason(error: BaseException) -> str:
    for link in _chain(error):
        if isinstance(link, socket.gaierror):
            return "the name does not resolve"
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, requests.Timeout | TimeoutError | encord.TimeOutError):
            return "no answer in time"
    return _one_line(str(error), limit=120)


def without_context(message: str) -> str:
    """An Encord error without the request context the SDK appends (timestamp, trace and span ids, domain)."""
    return _one_line(message.split(" timestamp=")[0])

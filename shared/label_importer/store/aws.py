"""The AWS clients of one container: the only place a boto3 session is made.

A session of its own rather than boto3's default one: the default session is not thread-safe, and local runs
drive several containers from threads of one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore import exceptions


@dataclass(frozen=True)
class AwsClients:
    s3: Any
    sqs: Any
    dynamodb: Any
    """The DynamoDB resource (the stores use its table API and its client for transactions)."""

    @classmethod
    def connect(cls) -> AwsClients:
        session = boto3.session.Session()
        return cls(s3=session.client("s3"), sqs=session.client("sqs"), dynamodb=session.resource("dynamodb"))


# How an AWS call fails, as the command line tells the cases apart to say what to fix. Named here so that nothing
# outside the store imports botocore.
NO_REGION: tuple[type[Exception], ...] = (exceptions.NoRegionError,)
NO_CREDENTIALS: tuple[type[Exception], ...] = (
    exceptions.NoCredentialsError,
    exceptions.PartialCredentialsError,
    exceptions.CredentialRetrievalError,
    exceptions.ProfileNotFound,
    exceptions.TokenRetrievalError,
    exceptions.SSOError,
)
UNREACHABLE: tuple[type[Exception], ...] = (exceptions.ConnectionError, exceptions.HTTPClientError)
REFUSED: tuple[type[Exception], ...] = (exceptions.ClientError,)
"""AWS answered and said no: a missing resource, a refused credential, a throttled table; `refusal` reads it."""


@dataclass(frozen=True)
class Refusal:
    operation: str
    code: str
    message: str


def refusal(error: BaseException) -> Refusal | None:
    """The call AWS refused, and its error code and message, from one of the REFUSED errors; None for any other."""
    if not isinstance(error, exceptions.ClientError):
        return None
    details = error.response.get("Error", {})
    return Refusal(error.operation_name, details.get("Code", "?"), details.get("Message", ""))

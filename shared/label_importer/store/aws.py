"""The AWS clients of one container: the only place a boto3 session is made.

A session of its own rather than boto3's default one: the default session is not thread-safe, and local runs
drive several containers from threads of one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3


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

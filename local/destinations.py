"""What Lambda hands the validator's on-failure destination, for the tests, the demo and `events/`.

Lambda retries an asynchronous invocation (an S3 event) and then sends a record of it to the destination
(AWS Lambda developer guide, "Capturing records of Lambda asynchronous invocations"): the original event
under `requestPayload`, and the error under `responsePayload`. Here that record travels in an SQS event as
the failures queue would deliver it.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from local.stack import REGION

VALIDATOR_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:encord-label-importer-validate-and-chunk"
VALIDATION_FAILURES_QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:encord-label-import-validation-failures"


def failed_invocation_record(event: dict[str, Any], error_message: str = "Task timed out after 900.00 seconds") -> str:
    """The destination record of an invocation with `event` that failed twice (the template's one retry)."""
    return orjson.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-12-02T01:00:00.000Z",
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": VALIDATOR_ARN,
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 2,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": error_message, "errorType": "Sandbox.Timedout"},
        }
    ).decode()


def sqs_event(*bodies: str) -> dict[str, Any]:
    """An SQS event of the failures queue carrying `bodies`, one record each."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "local",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": VALIDATION_FAILURES_QUEUE_ARN,
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }

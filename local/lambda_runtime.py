"""What the Lambda service does around our handlers, done in-process: events from `events/`, a context,
and an SQS poller that honours partial batch failures and redelivers like the event source mapping.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3

from local.stack import BUCKET, REGION, LocalStack

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO_ROOT / "events"

Handler = Callable[[dict[str, Any], Any], Any]

_HANDLER_MODULE_PREFIX = "lambda_"


def load_handler(function_dir: str, handler: str = "app.handler", *, container: int = 0) -> Handler:
    """Import `functions/<function_dir>/<module>.py` as Lambda does with its CodeUri, under a unique name
    (both functions' modules are called `app`), and return the handler callable.

    Each `container` gets its own copy of the module, hence its own warm state (clients, caches), as
    concurrent Lambda containers do.
    """
    module_name, attribute = handler.rsplit(".", 1)
    path = REPO_ROOT / "functions" / function_dir / f"{module_name}.py"
    qualified = f"{_HANDLER_MODULE_PREFIX}{function_dir}_{module_name}_{container}"
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    return getattr(sys.modules[qualified], attribute)


def cold_start() -> None:
    """Forget every container's warm state, as Lambda does when a function's configuration changes: it replaces
    all containers, and each new one reads the environment again.

    In this process that state is the handler modules `load_handler` loaded (their cached collaborators) and
    the layer's process-wide caches: settings, the Encord clients with the projects opened through them (which
    hold the client they were opened with, hence its timeouts) and the secret. Handlers loaded before this keep
    their old state; load them again.
    """
    from aws_lambda_powertools.utilities import parameters

    from label_importer.encord_target import gateway as encord_gateway
    from label_importer.runtime.settings import settings

    for name in [name for name in sys.modules if name.startswith(_HANDLER_MODULE_PREFIX)]:
        del sys.modules[name]
    settings.cache_clear()
    encord_gateway._connections.clear()
    parameters.clear_caches()


@contextmanager
def environment_changed(**variables: str) -> Iterator[None]:
    """Run the functions with these environment variables changed (a redeployment with new settings), then put
    the environment back. Both edges are cold starts; handlers must be loaded inside, e.g. `Pipeline.on(stack)`.

    How tests that need a setting of their own get one, e.g. a client timeout short enough for a slow answer
    to exceed it, without the rest of the suite running with that setting.
    """
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    cold_start()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cold_start()


@dataclass
class LambdaContext:
    """The attributes of the runtime's context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 300.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def s3_object_created_event(stack: LocalStack, key: str) -> dict[str, Any]:
    """`events/s3-object-created.json` with the bucket, key and version of an object really in the bucket.

    Its event time and sequencer are those of now, as S3 stamps each upload: they give uploads their order.
    """
    event = json.loads((EVENTS_DIR / "s3-object-created.json").read_text())
    head = stack.client("s3").head_object(Bucket=BUCKET, Key=key)
    now_ns = time.time_ns()
    uploaded = datetime.fromtimestamp(now_ns / 1e9, UTC)
    event["Records"][0]["eventTime"] = uploaded.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    s3 = event["Records"][0]["s3"]
    s3["bucket"]["name"] = BUCKET
    s3["bucket"]["arn"] = f"arn:aws:s3:::{BUCKET}"
    s3["object"].update(
        {
            # S3 URL-encodes keys in events (spaces as '+'); the handler must decode them.
            "key": quote_plus(key, safe="/"),
            "size": head["ContentLength"],
            "eTag": head["ETag"].strip('"'),
            "versionId": head.get("VersionId"),
            "sequencer": f"{now_ns:X}",
        }
    )
    return event


@dataclass
class DrainStats:
    batches: int = 0
    messages: int = 0
    failures: int = 0

    def add(self, batches: int, messages: int, failures: int) -> None:
        self.batches += batches
        self.messages += messages
        self.failures += failures


def drain_queue(
    stack: LocalStack,
    handler: Handler,
    *,
    batch_size: int = 5,
    max_batches: int = 10_000,
    timeout_seconds: float = 300.0,
) -> DrainStats:
    """Deliver queued chunks to `handler` until the queue is empty, as the SQS event source mapping would.

    Messages the handler reports in `batchItemFailures`, or all of the batch when the invocation raises,
    are made visible again at once (the real queue waits out the visibility timeout) and go to the
    dead-letter queue after maxReceiveCount deliveries. Each invocation gets `timeout_seconds`.
    """
    return drain_concurrently(
        stack, [handler], batch_size=batch_size, max_batches=max_batches, timeout_seconds=timeout_seconds
    )


def drain_concurrently(
    stack: LocalStack,
    handlers: list[Handler],
    *,
    batch_size: int = 5,
    max_batches: int = 10_000,
    timeout_seconds: float = 300.0,
) -> DrainStats:
    """`drain_queue` with one consumer thread per handler (load each with its own `container`), polling at
    once as concurrent invocations do. Returns when the queue is empty and no consumer holds a batch."""
    sqs = stack.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stats = DrainStats()
    lock = threading.Lock()
    busy = [0]
    errors: list[BaseException] = []

    def consume(handler: Handler) -> None:
        client = stack.client("sqs")
        while True:
            with lock:
                if stats.batches >= max_batches or errors:
                    return
                busy[0] += 1
            try:
                delivered = _deliver_batch(client, stack.queue_url, queue_arn, handler, batch_size, timeout_seconds)
            except BaseException as error:  # a harness failure: stop everyone and re-raise below
                with lock:
                    errors.append(error)
                    busy[0] -= 1
                return
            with lock:
                busy[0] -= 1
                if delivered is not None:
                    stats.add(1, *delivered)
                    continue
                if busy[0] == 0:
                    return
            # The queue is empty for now, but a busy consumer may still hand messages back. Real consumers
            # long-poll; here every poll is a request to the one-at-a-time moto server, so poll sparingly.
            time.sleep(0.5)

    if len(handlers) == 1:  # on the calling thread, where a profiler sees it
        consume(handlers[0])
    else:
        threads = [threading.Thread(target=consume, args=(handler,)) for handler in handlers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    if stats.batches >= max_batches:
        raise RuntimeError(f"the queue was not empty after {max_batches} batches")
    return stats


def drain_in_processes(
    stack: LocalStack, processes: int, *, batch_size: int = 5, timeout_seconds: float = 300.0
) -> DrainStats:
    """`drain_queue` with each consumer in a Python process of its own, as Lambda containers run side by side
    (threads of one process share its interpreter lock, so they cannot show what parallel consumers gain).
    The children reach moto and the fake Encord through the environment `local_stack` set."""
    with tempfile.TemporaryDirectory() as folder:
        outputs = [Path(folder) / f"{i}.json" for i in range(processes)]
        consumer = [
            sys.executable,
            "-m",
            "local.lambda_runtime",
            stack.queue_url,
            f"{batch_size}",
            f"{timeout_seconds}",
        ]
        children = [
            subprocess.Popen([*consumer, str(output)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL) for output in outputs
        ]
        if any(child.wait() != 0 for child in children):
            raise RuntimeError("a consumer process failed")
        stats = DrainStats()
        for output in outputs:
            stats.add(**json.loads(output.read_text()))
        return stats


def _consume_until_drained(queue_url: str, batch_size: int, timeout_seconds: float) -> DrainStats:
    """One consumer process: deliver batches until no message is waiting or in flight anywhere."""
    handler = load_handler("import_labels")
    sqs = boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stats = DrainStats()
    while True:
        delivered = _deliver_batch(sqs, queue_url, queue_arn, handler, batch_size, timeout_seconds)
        if delivered is not None:
            stats.add(1, *delivered)
            continue
        counts = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if not any(int(count) for count in counts.values()):
            return stats
        time.sleep(0.5)


def _deliver_batch(
    sqs: Any, queue_url: str, queue_arn: str, handler: Handler, batch_size: int, timeout_seconds: float
) -> tuple[int, int] | None:
    """Receive one batch, invoke the handler, settle each message; (messages, failures), or None if none."""
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=batch_size, AttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])
    if not received:
        return None
    event = {"Records": [_sqs_record(message, queue_arn) for message in received]}
    try:
        response = handler(event, LambdaContext("ImportLabelsFunction", timeout_seconds=timeout_seconds))
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
    except Exception:  # an invocation error fails the whole batch, as Lambda does
        failed = {message["MessageId"] for message in received}
    for message in received:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(received), len(failed)


def duplicate_queued_messages(stack: LocalStack) -> int:
    """Send every queued message a second time, as SQS's at-least-once delivery may; returns how many."""
    sqs = stack.client("sqs")
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    for body in bodies + bodies:
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    return len(bodies)


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


if __name__ == "__main__":  # a consumer process of drain_in_processes
    queue_url, batch_size, timeout_seconds, output = sys.argv[1:]
    drained = _consume_until_drained(queue_url, int(batch_size), float(timeout_seconds))
    Path(output).write_text(json.dumps(asdict(drained)))

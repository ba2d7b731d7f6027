"""The whole product on one machine: moto for S3/SQS/DynamoDB/Secrets Manager, the fake Encord API, and the
resources the template would create, wired through the same environment variables the Lambdas read.

The demo and the integration tests both stand on this, so what the demo shows is what the tests check.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import boto3
from encord import Project
from encord.objects import LabelRowV2
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from local.fake_encord import FakeEncordServer, encord_client
from local.keys import generate_ssh_private_key

REGION = "us-east-1"
BUCKET = "encord-labels-local"
TABLE = "encord-label-import-jobs"
QUEUE = "encord-label-import"
DEAD_LETTER_QUEUE = "encord-label-import-dlq"
SECRET = "encord/ssh-private-key"
MAX_RECEIVE_COUNT = 5


POWERTOOLS_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "encord-label-importer",
    "POWERTOOLS_METRICS_NAMESPACE": "EncordLabelImporter",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
"""As template.yaml sets them. Powertools reads them when `label_importer.runtime.observability` is first imported,
so a process must set them before importing any handler code."""


class _AtomicMotoServer(ThreadedMotoServer):
    """moto's server, answering one request at a time.

    Every AWS API call is atomic in AWS; moto's are not when requests arrive on several threads (a cancelled
    DynamoDB transaction restores the whole table from a copy taken before it, undoing what other requests
    wrote meanwhile). Tests with concurrent consumers would then see races AWS never has, so each request
    runs alone. This replaces ThreadedMotoServer._server_entry with the same server around a locked app.
    """

    busy_seconds = 0.0
    """Time spent answering requests: what the local AWS stand-in costs a run (benchmarks report it)."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def one_at_a_time(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            with lock:
                started = time.perf_counter()
                try:
                    return list(app(environ, start_response))
                finally:
                    self.busy_seconds += time.perf_counter() - started

        self._server = make_server(
            self._ip_address, self._port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def _back_up_each_table_once_per_transaction() -> None:
    """moto's TransactWriteItems deep-copies a table once for every item it writes there (the backup it restores
    if the transaction is cancelled), so a 100-item transaction on a table of n items copies 100·n items and
    a big job's recording slows down quadratically. One copy per table per transaction is the same backup.

    Done by handing moto's dynamodb module a `copy` whose deepcopy returns the first copy of a table again
    for the rest of the transaction; safe because the server runs one request at a time (_AtomicMotoServer).
    """
    from moto.dynamodb import models

    transact_write_items = models.DynamoDBBackend.transact_write_items
    if getattr(transact_write_items, "backs_up_once", False):
        return

    def backing_up_once(backend: models.DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        backups: dict[int, models.Table] = {}

        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            if not isinstance(value, models.Table):
                return copy.deepcopy(value, memo)
            if id(value) not in backups:
                backups[id(value)] = copy.deepcopy(value)
            return backups[id(value)]

        models.copy = SimpleNamespace(deepcopy=deepcopy)  # type: ignore[assignment]
        try:
            transact_write_items(backend, transact_items)
        finally:
            models.copy = copy

    backing_up_once.backs_up_once = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = backing_up_once  # type: ignore[method-assign]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_AGAINST_THE_FAKE = {
    # Far above how long the fake takes to answer, even on a busy machine where a bundle of 100 rows can take
    # seconds: a timeout that fires there makes the importer retry, and a test counting round trips fail.
    # Tests that need a timeout to fire lower it themselves (lambda_runtime.environment_changed).
    "ENCORD_TIMEOUT_SECONDS": "60",
    # Backoff between attempts in milliseconds rather than seconds (a Retry-After is still honoured).
    "RETRY_BACKOFF_SECONDS": "0.01",
    # Limits lowered from the defaults so that tests can cross each of them with small files.
    "MAX_FILE_BYTES": str(64 << 20),
    "MAX_LINE_BYTES": str(256 << 10),
    "MAX_RECORDS": "5000",
    "MAX_OBJECTS_PER_DATA_UNIT": "100",
    "MAX_POLYGON_POINTS": "2000",
    "MAX_BITMASK_PIXELS": "1000000",
    "MAX_CHUNK_BYTES": str(1 << 20),
    "MAX_COCO_IMAGES": "2000",
    "MAX_COCO_CATEGORIES": "100",
}
"""Settings for runs against the fake; against a real project the functions keep the deployment's defaults."""


LAMBDA_VARIABLES = (
    "AWS_",
    "ENCORD_",
    "POWERTOOLS_",
    "JOBS_",
    "IMPORT_",
    "DEFAULT_",
    "MAX_",
    "BUNDLE_",
    "RETRY_",
    "LEASE_",
)


def user_environment() -> dict[str, str]:
    """This process's environment without AWS, Encord, the functions' settings or Powertools: what a user's own
    shell has, for running a command as a user would (tests of the local CLI and the live check)."""
    return {name: value for name, value in os.environ.items() if not name.startswith(LAMBDA_VARIABLES)}


@dataclass(frozen=True)
class EncordTarget:
    """The Encord project the functions talk to: the fake's (tests, demo) or a real one (local CLI, live tests)."""

    domain: str
    project_hash: str
    ssh_private_key: str


@dataclass
class LocalStack:
    """Handles to the running local services and the resources created in them."""

    moto_url: str
    encord: FakeEncordServer | None
    """The fake Encord server; None when the stack talks to a real project."""
    target: EncordTarget
    queue_url: str
    dead_letter_queue_url: str
    secret_arn: str
    moto: _AtomicMotoServer

    @property
    def environment(self) -> dict[str, str]:
        """The Lambda environment, as template.yaml sets it, pointing at the local services."""
        return {
            "JOBS_TABLE_NAME": TABLE,
            "ENCORD_SECRET_ID": self.secret_arn,
            "ENCORD_DOMAIN": self.target.domain,
            "DEFAULT_PROJECT_HASH": self.target.project_hash,
            "IMPORT_QUEUE_URL": self.queue_url,
            "BUNDLE_SIZE": "100",
            "MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
            **(_AGAINST_THE_FAKE if self.encord is not None else {}),
            **POWERTOOLS_ENVIRONMENT,
        }

    def encord_project(self) -> Project:
        """The project as a user would open it with the unmodified SDK: how tests read labels back."""
        return encord_client(self.target.domain, self.target.ssh_private_key).get_project(self.target.project_hash)

    def read_back(self, data_hashes: list[str], branch: str = "main") -> dict[str, LabelRowV2]:
        """Fresh label rows of `branch` for `data_hashes`, initialised from what the fake Encord stored."""
        project = self.encord_project()
        rows = project.list_label_rows_v2(data_hashes=data_hashes, branch_name=branch)
        with project.create_bundle() as bundle:
            for row in rows:
                if row.label_hash is not None:
                    row.initialise_labels(bundle=bundle)
        return {row.data_hash: row for row in rows}

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.moto_url)

    def reset(self) -> None:
        """Empty every AWS resource (keeping them), so each test starts from a clean state."""
        s3 = self.client("s3")
        versions = s3.list_object_versions(Bucket=BUCKET)
        for entry in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            s3.delete_object(Bucket=BUCKET, Key=entry["Key"], VersionId=entry["VersionId"])
        sqs = self.client("sqs")
        for url in (self.queue_url, self.dead_letter_queue_url):
            # Not PurgeQueue: SQS (and moto) allow one purge per queue per minute.
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
        table = boto3.resource("dynamodb", region_name=REGION, endpoint_url=self.moto_url).Table(TABLE)
        with table.batch_writer() as batch:
            for item in _scan(table):
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})


def _scan(table: Any) -> Iterator[dict[str, Any]]:
    query: dict[str, Any] = {"ProjectionExpression": "pk, sk"}
    while True:
        page = table.scan(**query)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _create_resources(
    moto: _AtomicMotoServer, moto_url: str, encord: FakeEncordServer | None, target: EncordTarget
) -> LocalStack:
    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=moto_url)

    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

    sqs = client("sqs")
    dlq_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={
            "MaximumMessageSize": str(1024 * 1024),
            "VisibilityTimeout": "1800",
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "{MAX_RECEIVE_COUNT}"}}',
        },
    )["QueueUrl"]

    client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    secret_arn = client("secretsmanager").create_secret(Name=SECRET, SecretString=target.ssh_private_key)["ARN"]
    return LocalStack(moto_url, encord, target, queue_url, dlq_url, secret_arn, moto)


@contextmanager
def local_stack(*, encord_latency: float = 0.0, target: EncordTarget | None = None) -> Iterator[LocalStack]:
    """Start moto and the fake Encord (or use the real project `target`), create the resources, and point this
    process's AWS SDK at them.

    Environment changes (endpoint, dummy credentials, the Lambda variables) are undone on exit.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto request drowns everything
    _back_up_each_table_once_per_transaction()
    port = _free_port()
    moto = _AtomicMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{port}"
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    try:
        with contextlib.ExitStack() as running:
            encord = None if target else running.enter_context(FakeEncordServer(latency=encord_latency))
            if encord is not None:
                target = EncordTarget(encord.url, encord.project_hash, generate_ssh_private_key())
            assert target is not None
            stack = _create_resources(moto, moto_url, encord, target)
            os.environ.update(stack.environment)
            yield stack
    finally:
        moto.stop()
        os.environ.clear()
        os.environ.update(saved)

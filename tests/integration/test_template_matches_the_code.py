"""What the code does on AWS is exactly what template.yaml allows it to do and shows on the dashboard.

One scenario drives both handlers through every path that touches AWS (claim checks, a rejected file, a
file with nothing valid, a dry run, a duplicate event, Encord throttling and 5xx, a refused row, a lease
left by a dead consumer) while recording each boto3 call per function and the metrics (EMF) printed.
The tests then hold the template to what was seen, both ways:

- every call a function made is allowed by its role, and every grant of the role was used by its function
  (or by the Lambda service on its behalf, listed below with the reason);
- the scenario reached every AWS operation that appears in the code each handler imports (a static scan),
  so a code path the scenario misses cannot hide a missing grant;
- the dashboard and alarms name exactly the metrics (namespace, name, dimensions) the code emits.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from botocore import xform_name
from botocore.client import BaseClient
from sam_template import (
    FAILURES,
    IMPORTER,
    ROLES,
    ROLLBACK,
    ROOT,
    VALIDATOR,
    MetricKey,
    as_list,
    bucket_arn,
    dashboard_metrics,
    grants,
    load_template,
    may,
    render,
    resources,
)

from label_importer.encord_target import gateway as encord_gateway
from label_importer.encord_target.retries import RetryPolicy
from label_importer.model.jobs import JobStatus
from label_importer.store.leases import DataUnitLeases
from label_importer.store.s3_objects import label_files
from local.destinations import failed_invocation_record, sqs_event
from local.lambda_runtime import Handler, LambdaContext, load_handler, s3_object_created_event
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import BUCKET, REGION, TABLE, LocalStack

pytestmark = pytest.mark.integration

SERVICES = ("s3", "sqs", "dynamodb", "secretsmanager")
LIBRARY_CALLS = {"get_secret": ("secretsmanager", "GetSecretValue")}
"""Library helpers our code calls that make an AWS call on its behalf (Powertools parameters)."""
HANDLERS = {
    VALIDATOR: "validate_and_chunk",
    IMPORTER: "import_labels",
    ROLLBACK: "rollback",
    FAILURES: "validation_failures",
}

LAMBDA_SERVICE_NEEDS = {
    # The event source mapping polls the queue with the function's role (AWS Lambda developer guide,
    # "Execution role permissions" for Amazon SQS); the local runtime plays that part, outside the code.
    IMPORTER: {
        ("sqs:receivemessage", "${ImportQueue.Arn}"),
        ("sqs:deletemessage", "${ImportQueue.Arn}"),
        ("sqs:getqueueattributes", "${ImportQueue.Arn}"),
    },
    FAILURES: {
        ("sqs:receivemessage", "${ValidationFailuresQueue.Arn}"),
        ("sqs:deletemessage", "${ValidationFailuresQueue.Arn}"),
        ("sqs:getqueueattributes", "${ValidationFailuresQueue.Arn}"),
    },
    # Lambda sends the record of an asynchronous invocation it gave up on to the on-failure destination with
    # the function's role (AWS Lambda developer guide, "Adding a destination").
    VALIDATOR: {("sqs:sendmessage", "${ValidationFailuresQueue.Arn}")},
}
"""Grants that the Lambda service uses with a function's role, beyond the calls of the code itself."""
RUNTIME_NEEDS = {
    ("logs:createlogstream", "${%s.Arn}"),
    ("logs:putlogevents", "${%s.Arn}"),
    ("xray:puttracesegments", "*"),
    ("xray:puttelemetryrecords", "*"),
}
"""What every function's runtime does with its role: write its log group (named per function) and traces."""
LOG_GROUPS = {
    VALIDATOR: "ValidateAndChunkLogGroup",
    IMPORTER: "ImportLabelsLogGroup",
    ROLLBACK: "RollbackLogGroup",
    FAILURES: "ValidationFailuresLogGroup",
}


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str
    params: dict[str, Any]


@dataclass
class Recording:
    """Each function's AWS calls, and every EMF metric document printed."""

    calls: dict[str, list[AwsCall]] = field(default_factory=lambda: {function: [] for function in ROLES})
    emf: list[dict[str, Any]] = field(default_factory=list)
    arns: dict[str, str] = field(default_factory=dict)
    """Concrete ARN of each local resource -> the template's name for it (`${JobsTable.Arn}`...)."""


class CallRecorder:
    """Records every boto3 call made while a wrapped handler runs, through botocore's single entry point.

    Only one handler runs at a time in the scenario, so whatever calls happen meanwhile (the leases' worker
    threads included) are that function's; the harness's own calls between invocations are not recorded.
    """

    def __init__(self, recording: Recording) -> None:
        self._recording = recording
        self._function: str | None = None
        self._lock = threading.Lock()

    def wrap(self, function: str, handler: Handler) -> Handler:
        def recorded(event: dict[str, Any], context: Any) -> Any:
            self._function = function
            try:
                return handler(event, context)
            finally:
                self._function = None

        return recorded

    def install(self, patch: pytest.MonkeyPatch) -> None:
        original = BaseClient._make_api_call
        recorder = self

        def make_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            function = recorder._function
            if function is not None:
                call = AwsCall(client.meta.service_model.service_name, operation, dict(params))
                with recorder._lock:
                    recorder._recording.calls[function].append(call)
            return original(client, operation, params)

        patch.setattr(BaseClient, "_make_api_call", make_api_call)


def cold_start() -> None:
    """Forget the Encord client, its projects and the cached secret, as a new container has none of them."""
    encord_gateway._connections.clear()
    parameters.clear_caches()


def run_scenario(stack: LocalStack, recorder: CallRecorder) -> None:
    encord = stack.encord
    pipeline = Pipeline(
        stack,
        recorder.wrap(VALIDATOR, load_handler("validate_and_chunk", container=101)),
        recorder.wrap(IMPORTER, load_handler("import_labels", container=101)),
    )
    titles = [f"scenario_{i}.jpg" for i in range(4)]
    hashes = [encord.add_image(title) for title in titles]
    big = [f"scenario_big_{i}.jpg" for i in range(30)]
    for title in big:
        encord.add_image(title)
    ring = [[round(0.5 + 0.2 * (i % 2), 6), round(i / 1000, 6)] for i in range(1000)]

    cold_start()
    encord.fail_next("list_label_rows", status=503)  # the validator retries its listing
    event = pipeline.upload("incoming/scenario.jsonl", jsonl(image_records(titles)))
    queued = pipeline.validate_event(event)
    assert pipeline.validate_event(event) == queued  # S3 delivered the event twice
    # Too big for an SQS message: travels by claim check in chunks/.
    pipeline.drop(
        "incoming/scenario big.jsonl",
        jsonl([{"data_title": title, "objects": [{"name": "Persimmon", "polygon": ring}]} for title in big]),
    )
    rejected = pipeline.drop("incoming/scenario bad.jsonl", jsonl([{"data_title": titles[0], "objects": [{}]}]))
    nothing_valid = pipeline.drop(
        "incoming/scenario skipped.jsonl",
        jsonl([{"data_title": "no such image.jpg", "objects": []}], header={"on_error": "skip-invalid"}),
    )
    some_skipped = pipeline.drop(  # finished by a consumer, whose report lists the file's problems
        "incoming/scenario some skipped.jsonl",
        jsonl(
            [{"data_title": "no such image.jpg", "objects": []}, *image_records(titles[:1])],
            header={"on_error": "skip-invalid"},
        ),
    )
    dry_run = pipeline.drop("incoming/scenario dry.jsonl", jsonl(image_records(titles), header={"dry_run": True}))
    s3 = stack.client("s3")
    # A repeated event for a finished job whose report is gone writes the report again.
    s3.delete_object(Bucket=BUCKET, Key=f"reports/{rejected}/report.json")
    assert pipeline.validate_event(s3_object_created_event(stack, "incoming/scenario bad.jsonl")) == rejected
    # The object version is gone before the validator reads it: the job fails (JobsFailed).
    purged_event = pipeline.upload("incoming/scenario purged.jsonl", jsonl(image_records(titles)))
    s3.delete_object(
        Bucket=BUCKET,
        Key="incoming/scenario purged.jsonl",
        VersionId=purged_event["Records"][0]["s3"]["object"]["versionId"],
    )
    purged = pipeline.validate_event(purged_event)
    # A validator invocation Lambda gave up on reaches the failures function through its destination.
    abandoned_event = pipeline.upload("incoming/scenario abandoned.jsonl", jsonl(image_records(titles)))
    fail_abandoned = recorder.wrap(FAILURES, load_handler("validation_failures", container=101))
    fail_abandoned(sqs_event(failed_invocation_record(abandoned_event)), LambdaContext("ValidationFailuresFunction"))

    cold_start()
    # A consumer that was killed holds a lease: the importer waits (LeaseWaits) until it expires, here as soon
    # as the importer has found it busy, so the wait does not depend on how fast this machine is.
    dead = "a consumer that was killed"
    DataUnitLeases(TABLE, lease_seconds=900).acquire(hashes[:1], holder=dead, branch="main")
    acquire = DataUnitLeases.acquire

    def acquire_then_expire(self: DataUnitLeases, data_hashes: Iterable[str], holder: str, *, branch: str) -> set[str]:
        wanted = list(data_hashes)
        held = acquire(self, wanted, holder, branch=branch)
        if hashes[0] in wanted and hashes[0] not in held:
            self.release(hashes[:1], dead, branch=branch)
        return held

    encord.refuse_saves(hashes[1])
    encord.fail_next("save_label_rows", status=429, retry_after=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DataUnitLeases, "acquire", acquire_then_expire)
        pipeline.drain()
    # A chunk whose saves fail past its in-invocation retries is redelivered and reads what it journaled.
    fresh = [f"scenario_redelivered_{i}.jpg" for i in range(2)]
    for title in fresh:
        encord.add_image(title)
    redelivered = pipeline.drop("incoming/scenario redelivered.jsonl", jsonl(image_records(fresh)))
    encord.fail_next("save_label_rows", status=503, times=RetryPolicy(attempt_seconds=0).max_attempts)
    pipeline.drain()
    assert pipeline.job(redelivered).status is JobStatus.COMPLETED
    # A message the validator never queued is refused and consumed, touching nothing (ChunksRefused).
    forged = '{"job_id": "' + redelivered + '", "chunk_index": 7, "claim_check": {"bucket": "b", "key": "k"}}'
    stack.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody=forged)
    assert pipeline.drain().failures == 0

    assert pipeline.job(queued).status is JobStatus.COMPLETED_WITH_ERRORS
    assert pipeline.job(rejected).status is JobStatus.REJECTED
    assert pipeline.job(nothing_valid).status is JobStatus.COMPLETED
    assert pipeline.job(dry_run).status is JobStatus.VALIDATED
    assert pipeline.job(some_skipped).status is JobStatus.COMPLETED
    assert pipeline.job(purged).status is JobStatus.FAILED
    assert pipeline.job(label_files(abandoned_event)[0].job_id).status is JobStatus.FAILED

    cold_start()
    roll_back = recorder.wrap(ROLLBACK, load_handler("rollback", container=101))
    assert "error" in roll_back({"job_id": rejected}, LambdaContext("RollbackFunction"))  # nothing to undo
    undone = roll_back({"job_id": queued}, LambdaContext("RollbackFunction", timeout_seconds=900))
    assert undone["status"] == "COMPLETED" and pipeline.job(queued).status is JobStatus.ROLLED_BACK


def local_arns(stack: LocalStack, template: dict[str, Any]) -> dict[str, str]:
    sqs = stack.client("sqs")

    def queue_arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    table = stack.client("dynamodb").describe_table(TableName=TABLE)["Table"]["TableArn"]
    return {
        queue_arn(stack.queue_url): "${ImportQueue.Arn}",
        queue_arn(stack.dead_letter_queue_url): "${ImportDeadLetterQueue.Arn}",
        table: "${JobsTable.Arn}",
        stack.secret_arn: "${EncordSshKeySecretArn}",
        f"arn:aws:s3:::{BUCKET}": bucket_arn(template),
    }


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def recording(session_stack: LocalStack, template: dict[str, Any]) -> Iterator[Recording]:
    session_stack.reset()
    session_stack.encord.reset()
    recording = Recording(arns=local_arns(session_stack, template))
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(printed):
        recorder = CallRecorder(recording)
        recorder.install(patch)
        run_scenario(session_stack, recorder)
    for line in printed.getvalue().splitlines():
        if line.startswith("{") and '"_aws"' in line:
            recording.emf.append(json.loads(line))
    yield recording


# ---------------------------------------------------------------- from a call to what IAM authorises


def authorisations(call: AwsCall, arns: dict[str, str]) -> list[tuple[str, str]]:
    """The (IAM action, resource) pairs AWS checks for one API call, the resource named as the template
    names it. Where the action differs from the operation's name, the IAM service authorisation reference
    says so: a versioned S3 read or tagging is its own action, SQS batches are authorised as their single
    form, and a DynamoDB transaction as each of its items."""
    params = call.params
    if call.service == "s3":
        versioned = "VersionId" in params
        action = {
            "GetObject": "GetObjectVersion" if versioned else "GetObject",
            "HeadObject": "GetObjectVersion" if versioned else "GetObject",
            "PutObjectTagging": "PutObjectVersionTagging" if versioned else "PutObjectTagging",
            "GetObjectTagging": "GetObjectVersionTagging" if versioned else "GetObjectTagging",
            "ListObjectsV2": "ListBucket",
        }.get(call.operation, call.operation)
        # Listing is authorised on the bucket (the policy's s3:prefix condition is checked in test_template).
        path = "" if action == "ListBucket" else f"/{params['Key']}"
        pairs = [(action, f"arn:aws:s3:::{params['Bucket']}{path}")]
    elif call.service == "sqs":
        account, name = params["QueueUrl"].rsplit("/", 2)[-2:]
        pairs = [(call.operation.removesuffix("Batch"), f"arn:aws:sqs:{REGION}:{account}:{name}")]
    elif call.service == "dynamodb":
        if call.operation == "TransactWriteItems":
            kinds = {
                "Put": "PutItem",
                "Update": "UpdateItem",
                "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem",
            }
            items = [next(iter(item.items())) for item in params["TransactItems"]]
            pairs = [(kinds[kind], _table_arn(request["TableName"])) for kind, request in items]
        elif call.operation in ("BatchGetItem", "BatchWriteItem"):
            pairs = [(call.operation, _table_arn(table)) for table in params["RequestItems"]]
        else:
            pairs = [(call.operation, _table_arn(params["TableName"]))]
    elif call.service == "secretsmanager":
        pairs = [(call.operation, params["SecretId"])]
    else:
        raise AssertionError(f"no IAM mapping for {call.service}:{call.operation}; add one")
    return [(f"{call.service}:{action}".lower(), _as_template_names(resource, arns)) for action, resource in pairs]


def _table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:123456789012:table/{name}"


def _as_template_names(resource: str, arns: dict[str, str]) -> str:
    for concrete, named in arns.items():
        if resource == concrete or resource.startswith(concrete + "/"):
            return named + resource[len(concrete) :]
    return resource


def used(recording: Recording, function: str) -> set[tuple[str, str]]:
    return {pair for call in recording.calls[function] for pair in authorisations(call, recording.arns)}


@pytest.mark.parametrize("function", list(ROLES))
def test_every_aws_call_a_function_makes_is_granted_to_its_role(
    recording: Recording, template: dict[str, Any], function: str
) -> None:
    denied = sorted(pair for pair in used(recording, function) if not may(template, ROLES[function], *pair))
    assert not denied, f"{function} would get AccessDenied for these (action, resource) pairs: {denied}"


@pytest.mark.parametrize("function", list(ROLES))
def test_a_role_grants_nothing_its_function_does_not_use(
    recording: Recording, template: dict[str, Any], function: str
) -> None:
    needed = used(recording, function) | LAMBDA_SERVICE_NEEDS.get(function, set())
    needed |= {(action, resource.replace("%s", LOG_GROUPS[function])) for action, resource in RUNTIME_NEEDS}
    unused = sorted(
        (action, target)
        for action, target in grants(template, ROLES[function])
        if not any(action == a and fnmatch.fnmatchcase(resource, target) for a, resource in needed)
    )
    assert not unused, f"{ROLES[function]} grants what {function} never uses: {unused}"


def test_the_mapping_to_iam_sees_versioned_reads_batches_and_transactions() -> None:
    """The translation above is what the two tests rest on; a few cases where the action is not the name."""
    arns = {"arn:aws:s3:::b": "${Bucket}", _table_arn("t"): "${Table.Arn}"}
    read = AwsCall("s3", "GetObject", {"Bucket": "b", "Key": "incoming/a b.jsonl", "VersionId": "v"})
    assert authorisations(read, arns) == [("s3:getobjectversion", "${Bucket}/incoming/a b.jsonl")]
    send = AwsCall("sqs", "SendMessageBatch", {"QueueUrl": "http://localhost/123456789012/q", "Entries": []})
    assert authorisations(send, arns) == [("sqs:sendmessage", f"arn:aws:sqs:{REGION}:123456789012:q")]
    items = [{"Update": {"TableName": "t"}}, {"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "t"}}]
    transaction = AwsCall("dynamodb", "TransactWriteItems", {"TransactItems": items})
    assert authorisations(transaction, arns) == [
        ("dynamodb:updateitem", "${Table.Arn}"),
        ("dynamodb:putitem", "${Table.Arn}"),
        ("dynamodb:conditioncheckitem", "${Table.Arn}"),
    ]


# ---------------------------------------------------------------- the scenario reaches every call in the code


def imported_modules(path: Path) -> set[Path]:
    """The files of `label_importer` that `path` imports, directly or through each other."""
    package = ROOT / "shared" / "label_importer"
    seen: set[Path] = set()
    pending = [path]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "label_importer":
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.split(".")[0] == "label_importer"]
            for name in names:
                relative = Path(*name.split(".")[1:])
                for candidate in (
                    package / relative / "__init__.py",
                    package.parent / "label_importer" / f"{relative}.py",
                ):
                    if candidate.is_file() and candidate not in seen:
                        seen.add(candidate)
                        pending.append(candidate)
    return seen


def operations_in_code() -> dict[tuple[str, str], list[str]]:
    """(service, operation) -> where, for every call in the handlers' code whose method is a boto3 operation.

    Modules are the unit: both handlers import `job_store` and the validator imports `import_chunk` (to
    finish a job with nothing to import), so which function makes a call is left to the recording; the scan
    only makes sure the scenario made each call at least once.
    """
    session = boto3.session.Session(region_name=REGION)
    by_method = dict(LIBRARY_CALLS)
    for service in SERVICES:
        for operation in session.client(service).meta.service_model.operation_names:
            by_method[xform_name(operation)] = (service, operation)
    handlers = {ROOT / "functions" / folder / "app.py" for folder in HANDLERS.values()}
    found: dict[tuple[str, str], list[str]] = {}
    for path in handlers.union(*(imported_modules(handler) for handler in handlers)):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in by_method:
                found.setdefault(by_method[node.attr], []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_scenario_makes_every_aws_call_in_the_handlers_code(recording: Recording) -> None:
    made = {(call.service, call.operation) for calls in recording.calls.values() for call in calls}
    in_code = operations_in_code()
    assert len(in_code) >= 10, f"the scan found too few AWS calls to be looking in the right place: {in_code}"
    missed = {operation: where for operation, where in in_code.items() if operation not in made}
    assert not missed, f"the scenario never reached these calls; extend run_scenario: {missed}"


# ---------------------------------------------------------------- metrics: code, dashboard and alarms agree


def emitted(recording: Recording) -> set[MetricKey]:
    metrics: set[MetricKey] = set()
    for document in recording.emf:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((name, document[name]) for name in dimension_set)
                for metric in directive["Metrics"]:
                    metrics.add((directive["Namespace"], metric["Name"], dimensions))
    return metrics


def alarm_metrics(template: dict[str, Any]) -> set[MetricKey]:
    """Metrics that alarms watch, alone or inside a metric-math expression."""
    found: set[MetricKey] = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        stats = [query["MetricStat"]["Metric"] for query in properties.get("Metrics", []) if "MetricStat" in query]
        if "MetricName" in properties:
            stats.append(properties)
        for metric in stats:
            dimensions = frozenset((d["Name"], render(d["Value"])) for d in as_list(metric.get("Dimensions", [])))
            found.add((metric["Namespace"], metric["MetricName"], dimensions))
    return found


def custom(metrics: Iterable[MetricKey], namespace: str) -> set[MetricKey]:
    return {metric for metric in metrics if metric[0] == namespace}


def test_the_dashboard_shows_exactly_the_metrics_the_code_emits(recording: Recording, template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace = variables["POWERTOOLS_METRICS_NAMESPACE"]
    code = emitted(recording)
    assert code, "the scenario printed no metrics"
    assert {metric[0] for metric in code} == {namespace}  # the namespace the template gives the functions
    assert {dict(metric[2]).get("service") for metric in code} == {variables["POWERTOOLS_SERVICE_NAME"]}
    shown = dashboard_metrics(template)
    assert custom(shown, namespace) == code
    latency = [stats for (_, name, _), stats in shown.items() if name == "EncordRequestLatency"]
    assert latency and {"p50", "p99"} <= latency[0]


def test_alarms_on_our_own_metrics_watch_metrics_the_code_emits(recording: Recording, template: dict[str, Any]) -> None:
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    watched = custom(alarm_metrics(template), namespace)
    assert watched, "no alarm watches the import's own metrics"
    assert watched <= emitted(recording)


def test_every_metric_name_in_the_code_was_emitted(recording: Recording) -> None:
    """The constants in observability.py are the code's metric names: each must show up in the scenario."""
    from label_importer.runtime import observability

    names = {value for name, value in vars(observability).items() if name.isupper() and isinstance(value, str)}
    assert names == {name for _, name, _ in emitted(recording)}

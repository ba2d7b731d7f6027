"""template.yaml is what users deploy: it must lint, transform offline, and give the code what it needs.

Most checks read the template as written (cfn-lint's loader keeps `!Sub`/`!Ref` as intrinsic dicts); those
about what SAM generates (the Lambda functions, the event source mapping, the bucket notification) read the
CloudFormation the SAM transform yields, produced here without AWS credentials or network.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from sam_template import (
    FAILURES,
    IMPORTER,
    ROLES,
    ROLLBACK,
    ROOT,
    TEMPLATE,
    VALIDATOR,
    allow_statements,
    as_list,
    bucket_arn,
    dashboard_metrics,
    grants,
    load_template,
    may,
    render,
    resources,
    sam_transform,
)

from label_importer.runtime.settings import Settings

SERVICE = "encord-label-importer"
NAMESPACE = "EncordLabelImporter"
LABEL_SUFFIXES = [".csv", ".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".xml", ".zip"]
DATA_SERVICES = ("s3", "sqs", "dynamodb", "secretsmanager")
"""Services whose actions must name their resources; only X-Ray has no resource-level permissions."""
DUMMY_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:encord/ssh-key-AbCdEf"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(template)


# ---------------------------------------------------------------- lint and transform


def test_cfn_lint_finds_nothing_in_the_template() -> None:
    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_cfn_lint_finds_nothing_after_the_transform(transformed: dict[str, Any], tmp_path: Path) -> None:
    """This cfn-lint checks SAM resources against SAM's schema without running the transform, so what SAM
    generates (event source mappings, invoke permissions, the dependencies they add) is only linted here;
    a circular dependency between the bucket, its notification and the functions' policies shows up here.
    """
    path = tmp_path / "transformed.json"
    path.write_text(json.dumps(transformed, indent=1))
    assert [str(match) for match in lint_file(path)] == []


def test_the_transform_yields_the_four_functions_on_the_layer(transformed: dict[str, Any]) -> None:
    functions = resources(transformed, "AWS::Lambda::Function")
    assert set(functions) == {VALIDATOR, IMPORTER, ROLLBACK, FAILURES}
    [layer] = resources(transformed, "AWS::Lambda::LayerVersion")
    for name, function in functions.items():
        properties = function["Properties"]
        assert properties["Handler"] == "app.handler"
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["arm64"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["Layers"] == [{"Ref": layer}]
        assert properties["Role"] == {"Fn::GetAtt": [ROLES[name], "Arn"]}
    assert functions[VALIDATOR]["Properties"]["Timeout"] <= 900


def test_the_layer_and_code_folders_match_the_packaging_contract(template: dict[str, Any]) -> None:
    layer = template["Resources"]["ImporterLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert (ROOT / "shared" / "requirements.txt").is_file()
    assert (ROOT / "shared" / "label_importer" / "__init__.py").is_file()
    functions = resources(template, "AWS::Serverless::Function")
    code = {name: function["Properties"]["CodeUri"] for name, function in functions.items()}
    assert code == {
        VALIDATOR: "functions/validate_and_chunk/",
        IMPORTER: "functions/import_labels/",
        ROLLBACK: "functions/rollback/",
        FAILURES: "functions/validation_failures/",
    }


def test_the_queue_feeds_the_importer_with_partial_failures_and_bounded_concurrency(
    transformed: dict[str, Any],
) -> None:
    mappings = resources(transformed, "AWS::Lambda::EventSourceMapping").values()
    [mapping] = [m for m in mappings if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["ImportQueue", "Arn"]}]
    properties = mapping["Properties"]
    assert properties["FunctionName"] == {"Ref": IMPORTER}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ImportMaxConcurrency"}}
    assert 1 <= properties["BatchSize"] <= 10
    assert properties["MaximumBatchingWindowInSeconds"] <= 5

    queue = transformed["Resources"]["ImportQueue"]["Properties"]
    importer = transformed["Resources"][IMPORTER]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * importer["Timeout"]
    # A data-unit lease outlives any invocation that holds it, and has expired before the message of a
    # consumer that died holding it is delivered again.
    lease_seconds = importer["Environment"]["Variables"]["LEASE_SECONDS"]
    assert importer["Timeout"] < lease_seconds < queue["VisibilityTimeout"]
    assert Settings.model_fields["lease_seconds"].default == lease_seconds  # local runs lease alike
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ImportDeadLetterQueue", "Arn"]}
    assert queue["MaximumMessageSize"] == 1024 * 1024
    assert queue["MessageRetentionPeriod"] >= 4 * 24 * 3600
    dead_letters = transformed["Resources"]["ImportDeadLetterQueue"]["Properties"]
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_parameters_keep_their_contract(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert "Default" not in parameters["EncordSshKeySecretArn"]
    assert re.fullmatch(parameters["EncordSshKeySecretArn"]["AllowedPattern"], DUMMY_SECRET_ARN)
    assert parameters["EncordDomain"]["Default"] == "https://api.encord.com"
    assert parameters["DefaultProjectHash"]["Default"] == ""
    bundle = parameters["BundleSize"]
    assert (bundle["Default"], bundle["MinValue"], bundle["MaxValue"]) == (100, 1, 1000)
    concurrency = parameters["ImportMaxConcurrency"]
    assert (concurrency["Default"], concurrency["MinValue"]) == (5, 2)
    assert parameters["LogRetentionDays"]["Default"] == 30
    assert parameters["LogLevel"]["Default"] == "INFO"
    assert parameters["AlarmEmail"]["Default"] == ""


def test_the_readme_documents_every_parameter(template: dict[str, Any]) -> None:
    deploying = (ROOT / "docs" / "deploying.md").read_text()
    assert [name for name in template["Parameters"] if f"`{name}`" not in deploying] == []


# ---------------------------------------------------------------- the code the template runs


def environment(transformed: dict[str, Any], function: str) -> dict[str, Any]:
    return transformed["Resources"][function]["Properties"]["Environment"]["Variables"]


POWERTOOLS_ENVIRONMENT = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
IMPORTER_SETTINGS = {
    "jobs_table_name",
    "chunks_in_flight",
    "encord_secret_id",
    "encord_domain",
    "encord_timeout_seconds",
    "retry_backoff_seconds",
    "bundle_size",
    "record_ttl_days",
    "lease_seconds",
    "max_receive_count",
}
"""What the import and rollback functions read; the validator reads every setting but the lease's length and the
import queue's maxReceiveCount."""


def test_each_function_is_given_exactly_the_settings_it_reads(transformed: dict[str, Any]) -> None:
    """A variable the template leaves out silently takes the code's default; a misspelt one is ignored."""
    every_setting = {name.upper() for name in Settings.model_fields}
    validator, importer = environment(transformed, VALIDATOR), environment(transformed, IMPORTER)
    rollback = environment(transformed, ROLLBACK)
    failures = environment(transformed, FAILURES)
    assert set(validator) - POWERTOOLS_ENVIRONMENT == every_setting - {
        "LEASE_SECONDS",
        "MAX_RECEIVE_COUNT",
        "CHUNKS_IN_FLIGHT",
    }
    # The failures function reads only the table and the records' TTL; the rest comes from Globals unread.
    assert {"JOBS_TABLE_NAME", "RECORD_TTL_DAYS"} <= set(failures) <= set(importer) - {"LEASE_SECONDS"}
    assert set(importer) - POWERTOOLS_ENVIRONMENT == {name.upper() for name in IMPORTER_SETTINGS}
    # The same import code path, run backwards, one bundle after another rather than a batch of chunks.
    assert rollback == {name: value for name, value in importer.items() if name != "CHUNKS_IN_FLIGHT"}
    for variables in (validator, importer):
        assert set(variables) >= POWERTOOLS_ENVIRONMENT
        assert variables["JOBS_TABLE_NAME"] == {"Ref": "JobsTable"}
        assert variables["ENCORD_SECRET_ID"] == {"Ref": "EncordSshKeySecretArn"}
        assert variables["ENCORD_DOMAIN"] == {"Ref": "EncordDomain"}
        assert variables["BUNDLE_SIZE"] == {"Ref": "BundleSize"}
        assert variables["RECORD_TTL_DAYS"] == {"Ref": "RecordTtlDays"}
        assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
        assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert validator["IMPORT_QUEUE_URL"] == {"Ref": "ImportQueue"}
    redrive = transformed["Resources"]["ImportQueue"]["Properties"]["RedrivePolicy"]
    assert importer["MAX_RECEIVE_COUNT"] == redrive["maxReceiveCount"]  # the last delivery is the one SQS makes
    assert validator["DEFAULT_PROJECT_HASH"] == {"Ref": "DefaultProjectHash"}


def test_every_setting_is_used_by_the_code() -> None:
    """A setting read from the environment but never used makes its variable a knob that does nothing."""
    package = ROOT / "shared" / "label_importer"
    used = {
        node.attr
        for path in package.rglob("*.py")
        if path.name != "settings.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
    }
    assert set(Settings.model_fields) - used == set()


def dummy_environment(template: dict[str, Any], variables: dict[str, Any]) -> dict[str, str]:
    """The function's variables with each Ref made concrete: parameter defaults, else plausible dummies."""
    concrete = {}
    for name, value in variables.items():
        if isinstance(value, dict) and set(value) == {"Ref"}:
            target = value["Ref"]
            parameter = template["Parameters"].get(target, {})
            if target == "EncordSshKeySecretArn":
                value = DUMMY_SECRET_ARN
            elif "Default" in parameter:
                value = parameter["Default"]
            else:
                value = f"dummy-{target.lower()}"
        concrete[name] = str(value)
    return concrete


IMPORT_HANDLER = """
import importlib, inspect, sys
module = importlib.import_module(sys.argv[1])
handler = getattr(module, sys.argv[2])
assert callable(handler), f"{sys.argv[1]}.{sys.argv[2]} is not callable"
inspect.signature(handler).bind({}, object())  # Lambda calls handler(event, context)
print(module.__file__)
"""


@pytest.mark.parametrize("function", list(ROLES))
def test_the_handler_resolves_to_a_callable(
    template: dict[str, Any], transformed: dict[str, Any], function: str
) -> None:
    """Import the handler as Lambda would: its CodeUri and the layer's content on the path, the function's
    environment set, in a fresh interpreter (both functions have a module called `app`).
    """
    properties = template["Resources"][function]["Properties"]
    module, attribute = properties["Handler"].rsplit(".", 1)
    code_dir = ROOT / properties["CodeUri"]
    env = {
        **dummy_environment(template, environment(transformed, function)),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join([str(code_dir), str(ROOT / "shared")]),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_HANDLER, module, attribute],
        cwd=code_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{function}: {result.stderr}"
    assert Path(result.stdout.strip()).resolve().parent == code_dir.resolve()


def test_each_function_logs_to_its_own_log_group_with_a_retention(template: dict[str, Any]) -> None:
    for function in ROLES:
        properties = template["Resources"][function]["Properties"]
        group_ref = properties["LoggingConfig"]["LogGroup"]["Ref"]
        group = template["Resources"][group_ref]
        assert group["Type"] == "AWS::Logs::LogGroup"
        function_name = render(properties["FunctionName"])
        assert render(group["Properties"]["LogGroupName"]) == f"/aws/lambda/{function_name}"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# ---------------------------------------------------------------- data at rest and the bucket's doors


def test_everything_is_encrypted_at_rest(template: dict[str, Any]) -> None:
    res = template["Resources"]
    [sse] = res["LabelBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms", "aws:kms:dsse"}
    queues = resources(template, "AWS::SQS::Queue")
    assert len(queues) >= 4
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert res["JobsTable"]["Properties"]["SSESpecification"] == {"SSEEnabled": True}


def test_the_bucket_is_private_tls_only_versioned_and_tidies_up(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["LabelBucket"]["Properties"]
    access = bucket["PublicAccessBlockConfiguration"]
    assert set(access) == {
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    }
    assert all(value is True for value in access.values())
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}

    [policy] = resources(template, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "LabelBucket"}
    [tls] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {render(r) for r in tls["Resource"]} == {"${LabelBucket.Arn}", "${LabelBucket.Arn}/*"}

    rules = [rule for rule in bucket["LifecycleConfiguration"]["Rules"] if rule["Status"] == "Enabled"]
    expiring = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule}
    assert set(expiring) == {"reports/", "chunks/", "rollback/"}
    assert expiring["rollback/"] >= expiring["reports/"]  # a job can be rolled back while its report exists
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)


def test_the_queues_refuse_plain_http(template: dict[str, Any]) -> None:
    """Every queue of the stack, dead-letter queues included, is in the one TLS-only policy."""
    queues = set(resources(template, "AWS::SQS::Queue"))
    assert {
        "ImportQueue",
        "ImportDeadLetterQueue",
        "ValidationFailuresQueue",
        "ValidationFailuresDeadLetterQueue",
    } <= queues
    [policy] = resources(template, "AWS::SQS::QueuePolicy").values()
    assert sorted(render(queue) for queue in policy["Properties"]["Queues"]) == sorted(f"${{{q}}}" for q in queues)
    [tls] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "sqs:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(render(arn) for arn in tls["Resource"]) == sorted(f"${{{q}.Arn}}" for q in queues)


def dead_letter_queues(template: dict[str, Any]) -> dict[str, str]:
    """Each queue with a redrive policy -> the queue its dead letters go to."""
    return {
        name: queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for name, queue in resources(template, "AWS::SQS::Queue").items()
        if "RedrivePolicy" in queue["Properties"]
    }


def test_every_consumed_queue_has_a_dead_letter_queue_of_its_own(template: dict[str, Any]) -> None:
    """A poison message in a queue without one comes back until the retention ends (14 days); one dead-letter
    queue per source keeps chunks and validator failure records apart, each to be redriven to its own queue."""
    queues = resources(template, "AWS::SQS::Queue")
    targets = dead_letter_queues(template)
    assert targets == {
        "ImportQueue": "ImportDeadLetterQueue",
        "ValidationFailuresQueue": "ValidationFailuresDeadLetterQueue",
    }
    assert set(targets) | set(targets.values()) == set(queues)  # every queue is a source or a dead-letter queue
    for source, dead_letters in targets.items():
        assert queues[source]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5
        assert "RedrivePolicy" not in queues[dead_letters]["Properties"]
        # Retention counts from the original enqueue: keep the maximum to leave time to redrive.
        assert queues[dead_letters]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_a_validator_lambda_gives_up_on_ends_in_the_failures_function(transformed: dict[str, Any]) -> None:
    """S3 invokes the validator asynchronously: its failed invocations must reach a consumer that fails the job."""
    [config] = resources(transformed, "AWS::Lambda::EventInvokeConfig").values()
    properties = config["Properties"]
    assert properties["FunctionName"] == {"Ref": VALIDATOR}
    assert properties["MaximumRetryAttempts"] <= 1  # a killed validator is killed again on the same file
    destination = {"Fn::GetAtt": ["ValidationFailuresQueue", "Arn"]}
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == destination
    [mapping] = [
        m["Properties"]
        for m in resources(transformed, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == destination
    ]
    assert mapping["FunctionName"] == {"Ref": FAILURES}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = transformed["Resources"]["ValidationFailuresQueue"]["Properties"]
    function = transformed["Resources"][FAILURES]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]


def test_the_jobs_table_has_the_keys_the_code_uses(template: dict[str, Any]) -> None:
    table = template["Resources"]["JobsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
    assert (types, keys) == ({"pk": "S", "sk": "S"}, {"pk": "HASH", "sk": "RANGE"})
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_only_label_files_under_incoming_trigger_the_validator(transformed: dict[str, Any]) -> None:
    notifications = transformed["Resources"]["LabelBucket"]["Properties"]["NotificationConfiguration"]
    assert set(notifications) == {"LambdaConfigurations"}
    configurations = notifications["LambdaConfigurations"]
    for configuration in configurations:
        assert configuration["Event"] == "s3:ObjectCreated:*"
        assert configuration["Function"] == {"Fn::GetAtt": [VALIDATOR, "Arn"]}
    filters = [
        {rule["Name"].lower(): rule["Value"] for rule in configuration["Filter"]["S3Key"]["Rules"]}
        for configuration in configurations
    ]
    assert sorted(filters, key=lambda f: f["suffix"]) == [
        {"prefix": "incoming/", "suffix": suffix} for suffix in LABEL_SUFFIXES
    ]
    # S3 rejects overlapping rules for one event type; with one prefix, suffixes overlap if one ends another.
    for suffix in LABEL_SUFFIXES:
        assert not any(other != suffix and other.endswith(suffix) for other in LABEL_SUFFIXES)


def test_only_the_label_bucket_may_invoke_the_validator(transformed: dict[str, Any]) -> None:
    permissions = [
        p["Properties"]
        for p in resources(transformed, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Ref": VALIDATOR}
    ]
    assert permissions
    for permission in permissions:
        assert permission["Principal"] == "s3.amazonaws.com"
        assert render(permission["SourceArn"]) == bucket_arn(transformed)
        assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


# ---------------------------------------------------------------- least privilege


def test_each_function_has_one_inline_policy_and_no_managed_ones(template: dict[str, Any]) -> None:
    for role in ROLES.values():
        properties = template["Resources"][role]["Properties"]
        assert len(properties["Policies"]) == 1
        assert "ManagedPolicyArns" not in properties
        for statement in properties["Policies"][0]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            assert {"NotAction", "NotResource", "NotPrincipal"}.isdisjoint(statement)


def test_the_importer_cannot_write_label_files(template: dict[str, Any]) -> None:
    assert not may(template, ROLES[IMPORTER], "s3:PutObject", f"{bucket_arn(template)}/incoming/labels.jsonl")


def test_the_write_check_sees_a_wildcard_grant(template: dict[str, Any]) -> None:
    """The check above must fail for a grant that allows the write only through wildcards."""
    widened = copy.deepcopy(template)
    [policy] = widened["Resources"][ROLES[IMPORTER]]["Properties"]["Policies"]
    name = widened["Resources"]["LabelBucket"]["Properties"]["BucketName"]
    arn = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", name, "/*"]]}
    policy["PolicyDocument"]["Statement"].append({"Effect": "Allow", "Action": "s3:Put*", "Resource": arn})
    assert may(widened, ROLES[IMPORTER], "s3:PutObject", f"{bucket_arn(widened)}/incoming/labels.jsonl")


def test_no_wildcards_except_where_aws_has_no_resource_level_permissions(template: dict[str, Any]) -> None:
    for role in ROLES.values():
        for statement in allow_statements(template, role):
            actions = [action.lower() for action in as_list(statement["Action"])]
            targets = [render(target) for target in as_list(statement["Resource"])]
            assert not any(action == "*" or action.endswith(":*") for action in actions), statement
            if any(action.split(":")[0] in DATA_SERVICES for action in actions):
                assert all(target != "*" and not target.endswith(":::*") for target in targets), statement
            if "*" in targets:
                assert all(action.startswith("xray:") for action in actions), statement


def test_s3_grants_name_the_label_bucket_itself(template: dict[str, Any]) -> None:
    """The policies spell out the bucket's name instead of referring to it; a typo would grant nothing."""
    prefix = bucket_arn(template) + "/"
    for role in ROLES.values():
        targets = {target for action, target in grants(template, role) if action.startswith("s3:")}
        listing = {target for action, target in grants(template, role) if action == "s3:listbucket"}
        assert targets and all(target.startswith(prefix) for target in targets - listing), targets
        assert listing <= {bucket_arn(template)}


def test_listing_is_held_to_the_journal_and_the_reports(template: dict[str, Any]) -> None:
    """The rollback and the import function list the journal, the validator lists reports (is one missing?):
    each only under its prefix, and the failures function lists nothing."""
    allowed = {ROLLBACK: "rollback/*", IMPORTER: "rollback/*", VALIDATOR: "reports/*"}
    for function, role in ROLES.items():
        listings = [s for s in allow_statements(template, role) if "s3:ListBucket" in as_list(s["Action"])]
        prefixes = [listing["Condition"] for listing in listings]
        assert prefixes == ([{"StringLike": {"s3:prefix": allowed[function]}}] if function in allowed else [])


# ---------------------------------------------------------------- operations


def dashboard_widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body))["widgets"]


def widget_metrics(template: dict[str, Any], title: str) -> set[tuple[str, ...]]:
    """(namespace, metric, dimension, value...) of each line of the widget with this title."""
    [widget] = [w for w in dashboard_widgets(template) if w["properties"].get("title") == title]
    return {tuple(part for part in line if isinstance(part, str)) for line in widget["properties"]["metrics"]}


LAMBDA_WIDGETS = {
    "Lambda errors and throttles": ("Errors", "Throttles"),
    "Lambda duration (ms)": ("Duration",),
    "Lambda concurrent executions": ("ConcurrentExecutions",),
}


def test_the_dashboard_shows_the_queues_and_every_function(template: dict[str, Any]) -> None:
    shown = set(dashboard_metrics(template))
    queue = frozenset({("QueueName", "<ImportQueue.QueueName>")})
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue) in shown
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue) in shown
    dead = widget_metrics(template, "Dead-letter queues")
    for dead_letters in dead_letter_queues(template).values():
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"<{dead_letters}.QueueName>") in dead
    functions = resources(template, "AWS::Serverless::Function")
    assert set(functions) == set(ROLES)
    for title, metrics in LAMBDA_WIDGETS.items():
        lines = widget_metrics(template, title)
        for function in functions:
            for metric in metrics:
                assert ("AWS/Lambda", metric, "FunctionName", f"<{function}>") in lines, (title, function)
    duration = {
        key: stats for key, stats in dashboard_metrics(template).items() if key[:2] == ("AWS/Lambda", "Duration")
    }
    assert all(stats == {"p50", "p99"} for stats in duration.values())


def test_the_dashboard_shows_superseded_rows_and_refused_and_failed_chunks(template: dict[str, Any]) -> None:
    def ours(metric: str) -> tuple[str, ...]:
        return (NAMESPACE, metric, "service", SERVICE)

    assert ours("RowsSuperseded") in widget_metrics(template, "Rows and chunks")
    chunks = widget_metrics(template, "Chunk messages refused and failed")
    assert chunks == {ours("ChunksRefused"), ours("ChunksFailed")}


def test_the_dashboard_widgets_do_not_overlap(template: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for widget in dashboard_widgets(template):
        title = widget["properties"]["title"]
        assert widget["x"] + widget["width"] <= 24, title  # the dashboard grid is 24 columns wide
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, f"{title} overlaps {cells[x, y]}"
                cells[x, y] = title


def alarm_on(template: dict[str, Any], namespace: str, metric: str, dimension: Any) -> dict[str, Any]:
    [alarm] = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if (a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) == (namespace, metric)
        and [d["Value"] for d in a["Properties"]["Dimensions"]] == [dimension]
    ]
    return alarm


NOTIFY = {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}


def test_every_alarm_notifies_the_alarm_topic(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == NOTIFY, name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name


def test_every_dead_letter_queue_and_every_function_s_errors_are_alarmed(template: dict[str, Any]) -> None:
    dead_letters = sorted(set(dead_letter_queues(template).values()))
    functions = sorted(resources(template, "AWS::Serverless::Function"))
    assert len(dead_letters) == 2 and len(functions) == 4
    watched = [
        alarm_on(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [queue, "QueueName"]})
        for queue in dead_letters
    ] + [alarm_on(template, "AWS/Lambda", "Errors", {"Ref": function}) for function in functions]
    for alarm in watched:
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["EvaluationPeriods"] == 1


def test_a_refused_chunk_message_raises_an_alarm(template: dict[str, Any]) -> None:
    """A chunk message that does not match what the validator recorded was forged, replayed or corrupted."""
    refused = template["Resources"]["RefusedChunksAlarm"]["Properties"]
    assert refused == alarm_on(template, NAMESPACE, "ChunksRefused", SERVICE)
    assert refused["Dimensions"] == [{"Name": "service", "Value": SERVICE}]
    assert (refused["Statistic"], refused["Period"]) == ("Sum", 300)
    assert (refused["ComparisonOperator"], refused["Threshold"]) == ("GreaterThanThreshold", 0)


def test_alarms_watch_stuck_chunks_and_failed_jobs(template: dict[str, Any]) -> None:
    queue = {"Fn::GetAtt": ["ImportQueue", "QueueName"]}
    stuck = alarm_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", queue)
    assert stuck["ComparisonOperator"] == "GreaterThanThreshold"
    assert 0 < stuck["Threshold"] <= 3600
    failed_jobs = template["Resources"]["FailedJobsAlarm"]["Properties"]
    [expression] = [query for query in failed_jobs["Metrics"] if query.get("ReturnData")]
    watched = {query["Id"]: query["MetricStat"]["Metric"]["MetricName"] for query in failed_jobs["Metrics"][1:]}
    assert watched == {"rejected": "JobsRejected", "with_errors": "JobsCompletedWithErrors", "system": "JobsFailed"}
    # Without FILL, a period in which only one of them has data would yield no value and not alarm.
    assert expression["Expression"] == "FILL(rejected, 0) + FILL(with_errors, 0) + FILL(system, 0)"
    assert (failed_jobs["ComparisonOperator"], failed_jobs["Threshold"]) == ("GreaterThanThreshold", 0)


def test_the_alarm_topic_exists_only_with_an_email_and_can_deliver(template: dict[str, Any]) -> None:
    has_email = {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert template["Conditions"]["HasAlarmEmail"] == has_email
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Condition"] == "HasAlarmEmail"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    # CloudWatch cannot use the AWS managed SNS key, so alarms on a topic encrypted with it never arrive.
    assert topic["Properties"].get("KmsMasterKeyId") != "alias/aws/sns"


def test_outputs_name_what_users_and_other_tools_need(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {
        "LabelBucketName",
        "ImportQueueUrl",
        "DeadLetterQueueUrl",
        "ValidationFailuresDeadLetterQueueUrl",
        "JobsTableName",
        "DashboardUrl",
    } <= set(outputs)
    assert outputs["LabelBucketName"]["Value"] == {"Ref": "LabelBucket"}
    assert outputs["ImportQueueUrl"]["Value"] == {"Ref": "ImportQueue"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "ImportDeadLetterQueue"}
    assert outputs["ValidationFailuresDeadLetterQueueUrl"]["Value"] == {"Ref": "ValidationFailuresDeadLetterQueue"}
    assert outputs["JobsTableName"]["Value"] == {"Ref": "JobsTable"}


def test_the_dashboard_lists_jobs_in_flight_from_the_importers_progress_log(template: dict[str, Any]) -> None:
    """The query reads the fields of `Job.progress()`, which the importer logs after each chunk
    (tests/integration/test_progress.py checks the log lines): a renamed field would leave the widget empty."""
    from label_importer.model.jobs import Job, JobStatus

    [query] = [widget["properties"]["query"] for widget in dashboard_widgets(template) if widget["type"] == "log"]
    assert query.startswith("SOURCE '<ImportLabelsLogGroup>'")
    progress = Job("j", JobStatus.IMPORTING, "b", "k", None, "p", "append", 0).progress()
    for field in ["job_id", "status", *progress]:
        assert f"({field})" in query or f"by {field}" in query, field

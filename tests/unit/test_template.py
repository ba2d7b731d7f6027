"""template.yaml is what users deploy: it must lint, transform, and say what the code and the brief need."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation that SAM would deploy, produced offline (no managed policies are used).

    Local code folders become S3 URIs first, as `sam package` does before the transform runs.
    """
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        for uri in ("CodeUri", "ContentUri"):
            if uri in resource.get("Properties", {}):
                resource["Properties"][uri] = f"s3://artifacts/{resource['Properties'][uri].strip('/')}.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator resolves pseudo parameters from a session
    try:
        return transform(packaged, {}, NoManagedPolicies())  # type: ignore[arg-type]
    finally:
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing() -> None:
    """cfn-lint also runs the SAM transform and checks the CloudFormation it yields."""
    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_every_handler_resolves_to_a_callable(template: dict[str, Any]) -> None:
    """Import each function as Lambda would: its CodeUri and the layer on the path, in a fresh interpreter."""
    functions = resources(template, "AWS::Serverless::Function")
    assert set(functions) == {"ValidateAndChunkFunction", "ImportLabelsFunction"}
    for name, function in functions.items():
        properties = function["Properties"]
        module, attribute = properties["Handler"].rsplit(".", 1)
        code_dir = ROOT / properties["CodeUri"]
        script = f"import {module}; assert callable({module}.{attribute}), '{name}'"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(code_dir), str(ROOT / "shared")]),
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "encord-label-importer",
        }
        result = subprocess.run([sys.executable, "-c", script], cwd=code_dir, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_handlers_get_the_environment_the_settings_read(template: dict[str, Any]) -> None:
    """Every variable the template sets is one the code reads, and every required setting is set."""
    from label_importer.settings import Settings

    known = {name.upper() for name in Settings.model_fields} | {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }
    required = {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}
    common = template["Globals"]["Function"]["Environment"]["Variables"]
    for function in resources(template, "AWS::Serverless::Function").values():
        own = function["Properties"].get("Environment", {}).get("Variables", {})
        assert set(common) | set(own) <= known
        assert required <= set(common) | set(own)
    validator = resources(template, "AWS::Serverless::Function")["ValidateAndChunkFunction"]
    assert "IMPORT_QUEUE_URL" in validator["Properties"]["Environment"]["Variables"]


def test_queue_feeds_the_importer_with_partial_failures_and_bounded_concurrency(transformed: dict[str, Any]) -> None:
    [mapping] = resources(transformed, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ImportMaxConcurrency"}}
    queue = transformed["Resources"]["ImportQueue"]["Properties"]
    importer = transformed["Resources"]["ImportLabelsFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * importer["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
    assert queue["MaximumMessageSize"] == 1024 * 1024


def test_only_label_files_under_incoming_trigger_the_validator(transformed: dict[str, Any]) -> None:
    bucket = transformed["Resources"]["LabelBucket"]["Properties"]
    rules = [
        {rule["Name"]: rule["Value"] for rule in config["Filter"]["S3Key"]["Rules"]}
        for config in bucket["NotificationConfiguration"]["LambdaConfigurations"]
    ]
    assert sorted(rules, key=lambda r: r["suffix"]) == [
        {"prefix": "incoming/", "suffix": ".json"},
        {"prefix": "incoming/", "suffix": ".jsonl"},
        {"prefix": "incoming/", "suffix": ".jsonl.gz"},
    ]


def test_everything_is_encrypted_at_rest_and_the_bucket_is_private(template: dict[str, Any]) -> None:
    res = template["Resources"]
    bucket = res["LabelBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    [tls] = res["LabelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (tls["Effect"], tls["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    for queue in ("ImportQueue", "ImportDeadLetterQueue"):
        assert res[queue]["Properties"]["SqsManagedSseEnabled"] is True
    table = res["JobsTable"]["Properties"]
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    [policy] = template["Resources"][role]["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _grants(template: dict[str, Any], role: str, action: str) -> list[str]:
    """The S3 key prefixes (…:::bucket/<prefix>) on which `role` may do `action`."""
    prefixes = []
    for statement in _statements(template, role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action not in actions:
            continue
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        prefixes.extend(target["Fn::Join"][1][-1] for target in targets if "Fn::Join" in target)
    return prefixes


def test_each_function_may_touch_only_its_own_prefixes(template: dict[str, Any]) -> None:
    assert _grants(template, "ImportLabelsRole", "s3:PutObject") == ["/reports/*"]
    assert _grants(template, "ImportLabelsRole", "s3:GetObject") == ["/chunks/*"]
    assert sorted(_grants(template, "ValidateAndChunkRole", "s3:PutObject")) == ["/chunks/*", "/reports/*"]
    assert _grants(template, "ValidateAndChunkRole", "s3:GetObject") == ["/incoming/*"]


def test_no_wildcards_except_where_aws_has_no_resource_level_permissions(template: dict[str, Any]) -> None:
    for role in ("ValidateAndChunkRole", "ImportLabelsRole"):
        for statement in _statements(template, role):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "*" not in actions and not any(action.endswith(":*") for action in actions)
            if statement["Resource"] == "*":
                assert all(action.startswith("xray:") for action in actions), statement

"""template.yaml as data, for the tests that hold the template and the code to one contract.

cfn-lint's loader keeps `!Sub`/`!Ref` as intrinsic dicts; `render` turns those into comparable strings, and
`may` answers "does this role allow this action on this resource" the way IAM matches wildcards.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"

VALIDATOR = "ValidateAndChunkFunction"
IMPORTER = "ImportLabelsFunction"
ROLLBACK = "RollbackFunction"
FAILURES = "ValidationFailuresFunction"
ROLES = {
    VALIDATOR: "ValidateAndChunkRole",
    IMPORTER: "ImportLabelsRole",
    ROLLBACK: "RollbackRole",
    FAILURES: "ValidationFailuresRole",
}


class OfflinePolicyLoader(ManagedPolicyLoader):
    """A managed-policy loader that never calls IAM.

    `transform` asks the loader only when a function lists AWS managed policies by name; both functions
    use explicit roles, so reaching IAM here would mean the template changed in a way the tests should see.
    """

    def __init__(self) -> None:
        super().__init__(iam_client=None)  # type: ignore[arg-type]

    def _load_policies_from_iam(self) -> None:
        raise AssertionError("the SAM transform asked for AWS managed policies; use explicit roles")


def load_template() -> dict[str, Any]:
    """The template as written, as plain JSON data (intrinsics are one-key dicts such as {"Ref": ...})."""
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation that SAM would deploy, produced offline.

    Local code folders become S3 URIs first, as `sam package` does before CloudFormation runs the transform.
    The translator reads the region from a boto3 session (no network call), so one is set for the duration.
    """
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        for uri in ("CodeUri", "ContentUri"):
            if uri in resource.get("Properties", {}):
                folder = resource["Properties"][uri].strip("/").replace("/", "-")
                resource["Properties"][uri] = f"s3://sam-artifacts/{folder}.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(packaged, {}, OfflinePolicyLoader())


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def render(value: Any) -> str:
    """A canonical string for a value that may hold intrinsics, so that ARNs can be compared and matched.

    `Ref X` and `GetAtt X.Y` render as `${X}` and `${X.Y}`, the way `!Sub` writes them, so a `!Sub` string
    and the `!Join` that builds the same name render alike.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        [(function, args)] = value.items()
        if function == "Ref":
            return f"${{{args}}}"
        if function == "Fn::GetAtt":
            return "${" + (".".join(args) if isinstance(args, list) else args) + "}"
        if function == "Fn::Sub" and isinstance(args, str):
            return args
        if function == "Fn::Join":
            separator, parts = args
            return separator.join(render(part) for part in parts)
        if function == "Fn::Select":
            index, source = args
            return f"${{Select({index}, {render(source)})}}"
        if function == "Fn::Split":
            delimiter, source = args
            return f"Split({delimiter}, {render(source)})"
    raise ValueError(f"cannot render {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def bucket_arn(template: dict[str, Any]) -> str:
    """The label bucket's ARN, from its BucketName: the form the policies must use to avoid a cycle."""
    name = template["Resources"]["LabelBucket"]["Properties"]["BucketName"]
    return "arn:${AWS::Partition}:s3:::" + render(name)


def allow_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    properties = template["Resources"][role]["Properties"]
    return [
        statement
        for policy in properties.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]


def grants(template: dict[str, Any], role: str) -> set[tuple[str, str]]:
    """Every (action, rendered resource) pair an Allow statement of `role` names; actions in lower case,
    as IAM compares them."""
    return {
        (action.lower(), render(target))
        for statement in allow_statements(template, role)
        for action in as_list(statement["Action"])
        for target in as_list(statement["Resource"])
    }


def may(template: dict[str, Any], role: str, action: str, resource: str) -> bool:
    """Whether any Allow statement of `role` matches `action` on `resource`, honouring IAM wildcards."""
    return any(
        fnmatch.fnmatchcase(action.lower(), granted) and fnmatch.fnmatchcase(resource, target)
        for granted, target in grants(template, role)
    )


MetricKey = tuple[str, str, frozenset[tuple[str, str]]]
"""(namespace, metric name, {(dimension, value)}): what identifies a CloudWatch metric."""


def dashboard_metrics(template: dict[str, Any]) -> dict[MetricKey, set[str]]:
    """Metric -> statistics shown, read from the dashboard's JSON body (`${X}` becomes `<X>`)."""
    dashboard = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", dashboard))
    shown: dict[MetricKey, set[str]] = {}
    for widget in body["widgets"]:
        properties = widget["properties"]
        for line in properties.get("metrics", []):
            options = line[-1] if isinstance(line[-1], dict) else {}
            namespace, metric, *dimensions = [part for part in line if isinstance(part, str)]
            key = (namespace, metric, frozenset(zip(dimensions[::2], dimensions[1::2], strict=True)))
            shown.setdefault(key, set()).add(options.get("stat", properties.get("stat", "Average")))
    return shown

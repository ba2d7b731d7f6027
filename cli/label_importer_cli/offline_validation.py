"""`label-importer validate FILE --ontology O --data-units U`: the deployed validator's checks, on this machine,
against a project described by its spec files: no AWS, no Encord key, no network.

It is the validator's own `check_file`, given the file from disk instead of S3 and the project from the spec
instead of Encord, and the reports are built by the same code as those in S3 (errors.jsonl byte for byte). So a
file that passes here passes deployed, as long as the project still is as the spec describes it. `--project`
stands where the key prefix `incoming/<project_hash>/` stands deployed, and the spec's own project hash where
the deployment's default project does. A file that passes ends VALIDATED, as a dry run does: nothing is queued.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from encord.exceptions import ResourceNotFoundError

from label_importer.model.data_units import DataUnitIndex
from label_importer.model.jobs import Job, JobStatus
from label_importer.model.problems import Problem
from label_importer.model.project import ProjectView
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.settings import Settings, settings_from
from label_importer.services.job_lifecycle import failed_job
from label_importer.services.validate import (
    FileRejected,
    ProjectTarget,
    ValidationFailed,
    check_file,
    checked_job,
    rejected_job,
)
from label_importer.sources.label_file import LabelFile
from label_importer.store.reports import ReportFile, final_files, problem_files
from label_importer.store.s3_objects import INCOMING_PREFIX
from label_importer_cli.project_spec import ProjectSpec

_NOT_USED_OFFLINE = {"JOBS_TABLE_NAME": "(offline)", "ENCORD_SECRET_ID": "(offline)"}
"""The settings every function needs but checking a file does not: the jobs table and the key's secret."""


@dataclass(frozen=True)
class CheckedOffline:
    job: Job
    reports: Path
    """`<out>/<job-id>/`: report.json, summary.txt and, for a file with problems, errors.jsonl."""


def validate_offline(label_file: Path, spec: ProjectSpec, project: str | None, out: Path) -> CheckedOffline:
    """Check the file as the validator would had it been uploaded to `incoming/<project>/` (or `incoming/`), and
    write the reports; the limits are the functions' own (MAX_* in the environment, else their defaults)."""
    config = _settings()
    key = f"{INCOMING_PREFIX}{project}/{label_file.name}" if project else f"{INCOMING_PREFIX}{label_file.name}"
    size = label_file.stat().st_size
    job = Job.starting(_job_id(label_file), "", str(label_file), None, "")
    file = LabelFile.of_path(key, label_file, config.limits, Deadline(math.inf))
    target = ProjectTarget(spec.project_hash or "", "give --project", partial(_from_spec, spec))
    problems: list[Problem]
    try:
        validated = check_file(file, size, target, config.limits, config.max_reported_errors)
    except FileRejected as rejection:
        job, problems, count = rejected_job(job, rejection), rejection.problems, rejection.problem_count
    except ValidationFailed as failure:
        job, problems, count = failed_job(job, failure.problem), [failure.problem], 1
    else:
        job = replace(checked_job(job, validated), status=JobStatus.VALIDATED, finished_at=int(time.time()))
        problems, count = validated.index.problems, validated.index.problem_count
    reports = out / job.job_id
    _write(reports, [*(problem_files(problems, count) if count else []), *final_files(job, problems, count)])
    return CheckedOffline(job, reports)


def _settings() -> Settings:
    return settings_from({**os.environ, **_NOT_USED_OFFLINE})


def _job_id(label_file: Path) -> str:
    """The same for the same version of the file (path, size, modification time), as deployed for one S3 object
    version: checking it again writes the same reports in the same folder."""
    stat = label_file.stat()
    identity = f"{label_file.resolve()}\x1f{stat.st_size}\x1f{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _from_spec(spec: ProjectSpec, project_hash: str) -> ProjectView:
    """The spec's project, for the hash the file resolves to; any other project is one the spec cannot give,
    said as the SDK says it of a project Encord does not have."""
    if spec.project_hash is not None and project_hash != spec.project_hash:
        raise ResourceNotFoundError(f"the spec files describe project {spec.project_hash}, not {project_hash}")
    return ProjectView(DataUnitIndex(spec.units), spec.ontology)


def _write(folder: Path, files: list[ReportFile]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        (folder / file.name).write_bytes(file.body)

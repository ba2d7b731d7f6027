"""Validate a dropped label file and queue it as chunks, or reject it with a report; never half of each.

Nothing is sent to Encord but reads (project, ontology, one listing of data units) until the whole file
has been checked; a file with problems under the `strict` policy queues nothing at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from encord.exceptions import AuthenticationError, AuthorisationError, ResourceNotFoundError

from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.checks.validation import FileIndex, index_records
from label_importer.encord_target.gateway import (
    EncordKeyUnusable,
    is_transient,
    retried_with_a_rotated_key,
)
from label_importer.model.data_units import DataUnitIndex, list_data_units
from label_importer.model.dry_run import DryRunDiff
from label_importer.model.jobs import TERMINAL, Job, JobStatus
from label_importer.model.label_format import PROJECT_HASH_PATTERN, ErrorPolicy, Header
from label_importer.model.limits import Limits
from label_importer.model.messages import chunk_document
from label_importer.model.problems import ErrorCode, Problem, shown_value
from label_importer.model.project import ProjectView
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import (
    JOBS_QUEUED,
    JOBS_REJECTED,
    ROWS_SKIPPED,
    VALIDATION_ERRORS,
    logger,
    metrics,
)
from label_importer.runtime.settings import Settings
from label_importer.runtime.world import World
from label_importer.services.chunking import assemble_chunks, plan_chunks
from label_importer.services.dry_run_diff import DiffFailed, diff_file
from label_importer.services.job_lifecycle import fail_job, finish_if_done, write_final_report
from label_importer.sources.bounded_reading import WRAP_UP_SECONDS, FileRefused, OutOfTime, ReadBudget
from label_importer.sources.formats import source_for
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import LabelSource, SourceRejected
from label_importer.store.chunk_queue import ChunkQueue
from label_importer.store.s3_objects import (
    LabelFileRef,
    ObjectUnavailable,
    RangedObject,
    dry_run_requested,
    key_project_hash,
    read_version,
)


class FileRejected(Exception):
    """The file has problems the error policy does not let through: the job is REJECTED with them."""

    def __init__(self, problems: list[Problem], index: FileIndex | None = None) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = problems
        self.problem_count = index.problem_count if index else len(problems)
        self.records = index.records if index else 0
        self.invalid_records = len(index.invalid_lines) if index else 0
        self.left_out = index.left_out if index else 0
        self.not_imported = dict(index.not_imported) if index else {}


def _whole_file(code: ErrorCode, message: str) -> FileRejected:
    return FileRejected([Problem(0, "", code, message)])


class ValidationFailed(Exception):
    """The system could not process the file (its version is gone, the key is unusable, Encord is down, time
    ran out): the job is FAILED, not REJECTED, because the file itself may be fine."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(0, "", code, message)


ReadProject = Callable[[str], ProjectView]
"""The project's ontology and data units by its hash: from Encord when deployed, from the spec files offline
(`label-importer validate`). Raises the SDK's ResourceNotFoundError or AuthorisationError for a project it cannot
give, which `check_file` reports as UNKNOWN_PROJECT whichever reader it was."""


@dataclass(frozen=True)
class ProjectTarget:
    """Where a file's project comes from besides its own options and its key, and how that project is read."""

    default_project_hash: str
    """The project of a file that names none (the deployment's DefaultProjectHash; offline, the spec's)."""
    default_hint: str
    """How a user sets that default, for the message of a file that names no project."""
    read: ReadProject


@dataclass(frozen=True)
class Validated:
    header: Header
    project_hash: str
    index: FileIndex
    source: LabelSource
    """Reads the file again for chunking, numbered as validation numbered it."""


def validate_and_chunk(ref: LabelFileRef, settings: Settings, world: World, deadline: Deadline) -> Job:
    """Validate the file and queue it, or reject or fail it: whatever happens, the job ends in a state and with a
    report that says so (or is left VALIDATING for Lambda's retry when not even that could be written)."""
    job = Job.starting(ref.job_id, ref.bucket, ref.key, ref.version_id, ref.upload_order)
    existing = world.jobs.create(job)
    if existing is not None and existing.status is not JobStatus.VALIDATING:
        logger.info("duplicate event for a file already handled", extra={"status": str(existing.status)})
        if existing.status in TERMINAL and not world.reports.exists(existing, "report.json"):
            logger.info("the finished job has no report; writing it again")
            write_final_report(existing, world.jobs, world.reports)
        return existing
    # A job still VALIDATING is one whose earlier attempt died midway: validating again is safe, and a
    # chunk sent twice is harmless because consumers skip rows the job has already recorded.
    job = existing or job
    try:
        return _validate_and_queue(job, ref, settings, world, deadline)
    except FileRejected as rejection:
        return _reject(job, rejection, world)
    except ValidationFailed as failure:
        return fail_job(job, failure.problem, world.jobs, world.reports)
    except Exception as error:
        logger.exception("the validator failed unexpectedly")
        problem = Problem(
            0, "", ErrorCode.INTERNAL_ERROR, f"the validator failed unexpectedly: {type(error).__name__}: {error}"
        )
        return fail_job(job, problem, world.jobs, world.reports)


def _validate_and_queue(job: Job, ref: LabelFileRef, settings: Settings, world: World, deadline: Deadline) -> Job:
    started = time.monotonic()
    validated = _validate(ref, settings, world, deadline)
    header, index = validated.header, validated.index
    plan = plan_chunks(
        index.lines_by_unit, settings.bundle_size, row_bytes=index.row_bytes, max_chunk_bytes=settings.max_chunk_bytes
    )
    job = replace(checked_job(job, validated), total_chunks=plan.count)
    # Pass 2 reads the file again; started without the time for it, it would queue (or diff) part of the file.
    needed = (time.monotonic() - started) * _PASS_TWO_SHARE + WRAP_UP_SECONDS
    if deadline.remaining() < needed:
        raise _out_of_time(index.records)
    world.jobs.set_plan(job)
    if index.problem_count:
        world.reports.write_problems(job, index.problems, index.problem_count)
        metrics.add_metric(name=VALIDATION_ERRORS, unit=MetricUnit.Count, value=index.problem_count)
        metrics.add_metric(name=ROWS_SKIPPED, unit=MetricUnit.Count, value=index.skipped_rows)
    if header.dry_run or dry_run_requested(world.s3, ref):
        try:
            diff = diff_file(job, validated.source.items(), plan, index, world, deadline, after_save=header.after_save)
        except DiffFailed as failure:
            raise ValidationFailed(failure.code, str(failure)) from None
        return _finish_dry_run(job, index, world, diff)

    queue = ChunkQueue(settings.import_queue_url, ref.bucket, world.chunks, sqs=world.sqs, s3=world.s3)

    def emit(chunk_index: int, rows: list[dict[str, Any]]) -> None:
        queue.add(chunk_document(job.job_id, chunk_index, job.project_hash, header.mode, header.branch, rows))

    try:
        assemble_chunks(validated.source.items(), plan, index, emit, after_save=header.after_save)
    except OutOfTime:
        raise _out_of_time(index.records, queueing=True) from None
    queue.flush()
    world.jobs.transition(job.job_id, JobStatus.QUEUED, allowed_from=[JobStatus.VALIDATING])
    metrics.add_metric(name=JOBS_QUEUED, unit=MetricUnit.Count, value=1)
    logger.info("job queued", extra={"rows": job.total_rows, "chunks": plan.count, "records": index.records})
    if job.total_rows == 0:  # skip-invalid with nothing valid: no consumer will ever finish it
        finish_if_done(job.job_id, world.jobs, world.reports)
    return world.jobs.get(job.job_id) or job


_PASS_TWO_SHARE = 1.2
"""Pass 2 (chunking) reads and parses what pass 1 did without checking it: it takes at most about as long."""


def _out_of_time(records: int, *, queueing: bool = False) -> ValidationFailed:
    outcome = (
        "chunks queued before time ran out are dropped by the import function, but rows it imported meanwhile stay"
        if queueing
        else "nothing was queued for import"
    )
    return ValidationFailed(
        ErrorCode.OUT_OF_TIME,
        f"the validator ran out of time after {records} records; split the file into smaller files ({outcome})",
    )


def _validate(ref: LabelFileRef, settings: Settings, world: World, deadline: Deadline) -> Validated:
    """The S3 object version the event names, checked against the project Encord holds."""
    limits = settings.limits
    budget = ReadBudget(limits.max_file_bytes, limits.max_compression_ratio, deadline)
    file = LabelFile(ref.key, budget, limits, partial(_stored, ref, world.s3), partial(_ranged, ref, world.s3))
    target = ProjectTarget(
        settings.default_project_hash,
        "set the DefaultProjectHash parameter",
        partial(_read_project, world, deadline=deadline),
    )
    return check_file(file, ref.size, target, limits, settings.max_reported_errors)


def check_file(file: LabelFile, size: int, target: ProjectTarget, limits: Limits, max_problems: int) -> Validated:
    """Options first, then the project, then every record: the file is read once here, whatever its format.

    The one check of a label file, deployed and offline alike; raises FileRejected (the job is REJECTED) or
    ValidationFailed (FAILED). `file.key` is the object key, which may name the project (incoming/<hash>/...).
    """
    if size > limits.max_file_bytes:
        raise _whole_file(
            ErrorCode.FILE_TOO_LARGE,
            f"the file is {size} bytes; at most {limits.max_file_bytes} are allowed (MAX_FILE_BYTES): split it",
        )
    try:
        source = source_for(file, limits)
    except FileRefused as refused:
        raise FileRejected([refused.problem]) from None
    except OutOfTime:
        raise _out_of_time(0) from None
    index = FileIndex(max_problems=max_problems, locate=source.locate)
    try:
        header = source.options()
        project_hash = _project_hash(header, file.key, target, source)
        project = _opened(target, project_hash)
        index.report(source.match(project))
        index_records(source.items(), project.units, OntologyResolver(project.ontology), index, limits)
    except SourceRejected as rejected:
        raise FileRejected(rejected.problems) from None
    except FileRefused as refused:
        index.report([refused.problem])
        raise FileRejected(index.problems, index) from None
    except OutOfTime:
        raise _out_of_time(index.records) from None
    if index.records == 0:
        raise _whole_file(ErrorCode.EMPTY_FILE, f"the file has no {source.records_noun}")
    if index.problem_count and (index.fatal or header.on_error is ErrorPolicy.STRICT):
        raise FileRejected(index.problems, index)
    return Validated(header, project_hash, index, source)


def _opened(target: ProjectTarget, project_hash: str) -> ProjectView:
    try:
        return target.read(project_hash)
    except (ResourceNotFoundError, AuthorisationError) as error:
        raise FileRejected(
            [
                Problem(
                    0,
                    "project_hash",
                    ErrorCode.UNKNOWN_PROJECT,
                    f"Encord project {project_hash!r} was not found or this key cannot access it "
                    f"({type(error).__name__})",
                )
            ]
        ) from None


def _stored(ref: LabelFileRef, s3: Any) -> tuple[Any, int]:
    """The exact object version the event names, every time."""
    try:
        return read_version(s3, ref)
    except ObjectUnavailable as gone:
        raise ValidationFailed(ErrorCode.OBJECT_UNAVAILABLE, str(gone)) from None


def _ranged(ref: LabelFileRef, s3: Any) -> RangedObject:
    return _Ranged(s3, ref, ref.size)


class _Ranged(RangedObject):
    """The exact object version, read at random (an archive), failing the job as `_stored` does if it is gone."""

    def readinto(self, buffer: Any) -> int:
        try:
            return super().readinto(buffer)
        except ObjectUnavailable as gone:
            raise ValidationFailed(ErrorCode.OBJECT_UNAVAILABLE, str(gone)) from None


def _project_hash(header: Header, key: str, target: ProjectTarget, source: LabelSource) -> str:
    """The file's options (a JSON Lines header, a COCO file's `encord` section), then key prefix, then the
    deployment's default; options and prefix must agree."""
    section = source.options_section
    where = f"{section} line" if source.options_line else f"'{section}' section"
    from_key = key_project_hash(key)
    if from_key is not None and not re.fullmatch(PROJECT_HASH_PATTERN, from_key):
        raise FileRejected(
            [
                Problem(
                    0,
                    "key",
                    ErrorCode.INVALID_VALUE,
                    f"the folder {from_key!r} under incoming/ is not an Encord project hash (a UUID); put the file "
                    "under incoming/<project_hash>/, or directly under incoming/ with the project in the "
                    f"{section}",
                    shown_value(from_key),
                )
            ]
        )
    if header.project_hash and from_key and header.project_hash != from_key:
        raise FileRejected(
            [
                Problem(
                    source.options_line,
                    f"{section}.project_hash",
                    ErrorCode.PROJECT_MISMATCH,
                    f"the {section} names project {header.project_hash!r} but the file is under "
                    f"incoming/{from_key}/; move the file or fix the {section}",
                )
            ]
        )
    project_hash = header.project_hash or from_key or target.default_project_hash
    if not project_hash:
        raise FileRejected(
            [
                Problem(
                    0,
                    "project_hash",
                    ErrorCode.MISSING_PROJECT,
                    f"no project: give 'project_hash' in the {where}, put the file under "
                    f"incoming/<project_hash>/, or {target.default_hint}",
                )
            ]
        )
    return project_hash


def _read_project(world: World, project_hash: str, deadline: Deadline) -> ProjectView:
    """The project's ontology, and its data units listed once; transient faults are retried, and a key Encord
    refuses is tried once more if the secret, read again, holds another (it was rotated). A project Encord does
    not have is left to `check_file` to report."""

    def listed() -> ProjectView:
        project = world.open_project(project_hash)
        return ProjectView(DataUnitIndex(list_data_units(project)), project.ontology_structure)

    def read() -> ProjectView:
        return retried_with_a_rotated_key(listed, world.key_refused)

    try:
        return world.retry_policy.call(read, deadline)
    except EncordKeyUnusable as error:
        raise ValidationFailed(ErrorCode.ENCORD_KEY_UNUSABLE, str(error)) from None
    except AuthenticationError:
        raise ValidationFailed(
            ErrorCode.ENCORD_KEY_UNUSABLE,
            "Encord refused the key in the deployment's secret: register its public key with an Encord user "
            "who can access the project",
        ) from None
    except Exception as error:
        if not is_transient(error):
            raise
        raise ValidationFailed(
            ErrorCode.ENCORD_UNAVAILABLE,
            f"Encord did not answer reading project {project_hash!r} after retrying ({type(error).__name__}: "
            f"{error}); upload the file again later",
        ) from None


def _reject(job: Job, rejection: FileRejected, world: World) -> Job:
    """Reports and tag first, status last: a rejection that could not write its report stays VALIDATING, and
    Lambda's retry (or the failure destination) ends it with one."""
    problems, problem_count = rejection.problems, rejection.problem_count
    rejected = rejected_job(job, rejection)
    world.jobs.set_plan(rejected)
    world.reports.write_problems(rejected, problems, problem_count)
    world.reports.write_final(rejected, problems=problems, problem_count=problem_count)
    world.reports.tag_source(rejected)
    world.jobs.transition(job.job_id, JobStatus.REJECTED, allowed_from=[JobStatus.VALIDATING])
    metrics.add_metric(name=JOBS_REJECTED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=VALIDATION_ERRORS, unit=MetricUnit.Count, value=problem_count)
    logger.info("file rejected", extra={"problems": problem_count})
    return world.jobs.get(job.job_id) or rejected


def rejected_job(job: Job, rejection: FileRejected) -> Job:
    """The job REJECTED with what checking the file found before it stopped."""
    return replace(
        job,
        status=JobStatus.REJECTED,
        total_records=rejection.records,
        invalid_records=rejection.invalid_records,
        records_left_out=rejection.left_out,
        labels_not_imported=dict(rejection.not_imported),
        problem_count=rejection.problem_count,
        finished_at=int(time.time()),
    )


def checked_job(job: Job, validated: Validated) -> Job:
    """The job with what checking a file that passed found: its project, mode, counts and problems (under
    skip-invalid). Everything but the plan of chunks, which only queueing needs."""
    index = validated.index
    return replace(
        job,
        project_hash=validated.project_hash,
        mode=validated.header.mode,
        branch=validated.header.branch,
        total_records=index.records,
        invalid_records=len(index.invalid_lines),
        records_left_out=index.left_out,
        labels_not_imported=dict(index.not_imported),
        total_rows=len(index.lines_by_unit),
        rows_skipped=index.skipped_rows,
        problem_count=index.problem_count,
    )


def _finish_dry_run(job: Job, index: FileIndex, world: World, diff: DryRunDiff) -> Job:
    """VALIDATED, with the diff in the reports: a dry run queues nothing, so no consumer will finish the job."""
    validated = replace(job, status=JobStatus.VALIDATED, finished_at=int(time.time()))
    world.reports.write_final(validated, problems=index.problems, problem_count=index.problem_count, diff=diff)
    world.reports.tag_source(validated)
    world.jobs.transition(job.job_id, JobStatus.VALIDATED, allowed_from=[JobStatus.VALIDATING])
    return world.jobs.get(job.job_id) or validated

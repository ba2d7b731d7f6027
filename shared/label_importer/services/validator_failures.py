"""The validator's on-failure destination: a validation Lambda gave up on (killed by its timeout or memory, or
out of retries) still ends its job FAILED, with a report.

Lambda retries an S3 event's asynchronous invocation and then sends a record of the failed invocation, with
the original event inside, to the queue this function reads. Nothing else could finish such a job: the
validator never got to write anything but VALIDATING. The record is untrusted input like any message; it can
only fail a job that is still VALIDATING (or create one FAILED for a file the validator never reached), so a
forged record cannot touch a job that was queued or finished.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from label_importer.model.jobs import Job
from label_importer.model.problems import ErrorCode, Problem
from label_importer.runtime.observability import logger
from label_importer.services.job_lifecycle import fail_job
from label_importer.store.jobs import JobStore
from label_importer.store.reports import ReportWriter
from label_importer.store.s3_objects import INCOMING_PREFIX, label_files


class _Lambdas(BaseModel):
    """Lambda's record spells its fields in camelCase; unknown ones are ignored (the format may grow)."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel)


class _RequestContext(_Lambdas):
    condition: str = "unknown"
    """RetriesExhausted or EventAgeExceeded."""
    approximate_invoke_count: int = 0


class _Response(_Lambdas):
    error_type: str | None = None
    error_message: str | None = None


class InvocationFailure(_Lambdas):
    """What Lambda sends to an on-failure destination (the fields this function reads)."""

    request_context: _RequestContext
    request_payload: dict[str, Any]
    response_payload: _Response | None = None

    @property
    def reason(self) -> str:
        response = self.response_payload
        said = (response.error_message or response.error_type) if response else None
        attempts = self.request_context.approximate_invoke_count
        return f"{said or self.request_context.condition} (after {attempts} attempts)"


def fail_abandoned_validation(body: str, jobs: JobStore, reports: ReportWriter) -> list[Job]:
    """Fail the jobs of the files in the failed invocation's S3 event; a record that is not one is dropped."""
    try:
        failure = InvocationFailure.model_validate_json(body)
        refs = [ref for ref in label_files(failure.request_payload) if ref.key.startswith(INCOMING_PREFIX)]
    except (ValidationError, KeyError, TypeError, ValueError) as error:
        logger.warning("not a record of a failed validator invocation; dropped", extra={"error": str(error)})
        return []
    ended = []
    for ref in refs:
        logger.set_correlation_id(ref.job_id)
        job = Job.starting(ref.job_id, ref.bucket, ref.key, ref.version_id, ref.upload_order)
        job = jobs.create(job) or job
        problem = Problem(
            0,
            "",
            ErrorCode.VALIDATOR_STOPPED,
            f"the validator stopped before it finished: {failure.reason}. A file this large or complex may need "
            "to be split; upload it (or its parts) again",
        )
        ended.append(fail_job(job, problem, jobs, reports))
    return ended

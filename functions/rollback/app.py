"""{"job_id": "<import job>"} -> roll that import back; returns the rollback job's outcome to the caller.

Invoked directly (console, `aws lambda invoke`, a workflow), never by an event source. A job that cannot be
rolled back, or data units busy with an import, come back as an `error` in the result, not as a traceback.
"""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from label_importer.model.leases import DataUnitsBusy
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import logger, tracer
from label_importer.runtime.settings import settings
from label_importer.runtime.world import World
from label_importer.services.rollback import CannotRollBack, roll_back
from label_importer.store.reports import report_key


@cache
def _world() -> World:
    return World.from_settings(settings())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job_id = event.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        return {"error": 'invoke with {"job_id": "<the import job to roll back>"}'}
    deadline = Deadline.in_seconds(context.get_remaining_time_in_millis() / 1000)
    try:
        job = roll_back(job_id, _world(), deadline)
    except (CannotRollBack, DataUnitsBusy) as error:
        logger.info("rollback not done", extra={"job_id": job_id, "reason": str(error)})
        return {"job_id": job_id, "error": str(error), "retry": isinstance(error, DataUnitsBusy)}
    return {
        "job_id": job_id,
        "rollback_job_id": job.job_id,
        "status": str(job.status),
        "rows_rolled_back": job.rows_rolled_back,
        "rows_failed": job.rows_failed,
        "report": f"s3://{job.bucket}/{report_key(job.job_id, 'summary.txt')}",
    }

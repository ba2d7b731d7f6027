"""S3 ObjectCreated on incoming/ -> validate the label file, then queue it as chunks or reject it."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import logger, metrics, tracer
from label_importer.runtime.settings import settings
from label_importer.runtime.world import World
from label_importer.services.validate import validate_and_chunk
from label_importer.store.s3_objects import label_files


@cache
def _world() -> World:
    return World.from_settings(settings())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    jobs = []
    deadline = Deadline.in_seconds(context.get_remaining_time_in_millis() / 1000)
    for ref in label_files(event):
        logger.set_correlation_id(ref.job_id)
        logger.append_keys(bucket=ref.bucket, key=ref.key)
        job = validate_and_chunk(ref, settings(), _world(), deadline)
        jobs.append({"job_id": job.job_id, "key": ref.key, "status": str(job.status)})
    return {"jobs": jobs}

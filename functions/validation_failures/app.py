"""The validator's on-failure destination (SQS) -> end each abandoned job FAILED, with its report."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from label_importer.runtime.observability import logger, metrics, tracer
from label_importer.runtime.settings import settings
from label_importer.runtime.world import World
from label_importer.services.validator_failures import fail_abandoned_validation


@cache
def _world() -> World:
    return World.from_settings(settings())


def record_handler(record: SQSRecord) -> None:
    world = _world()
    fail_abandoned_validation(record.body, world.jobs, world.reports)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

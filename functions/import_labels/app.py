"""SQS batch of chunks -> verify and import each into Encord, a few at a time (one talking to Encord); failed
messages go back to the queue, refused ones (not a chunk the validator queued) are consumed, the rest are done."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from label_importer.runtime.deadline import Deadline
from label_importer.runtime.observability import logger, metrics, tracer
from label_importer.runtime.pipelined_batch import PipelinedBatchProcessor
from label_importer.runtime.settings import settings
from label_importer.runtime.world import Worlds
from label_importer.services.chunk_intake import import_message


@cache
def _worlds() -> Worlds:
    return Worlds(settings())


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    deadline = Deadline.in_seconds(lambda_context.get_remaining_time_in_millis() / 1000)
    delivery = int(record.attributes.approximate_receive_count)
    with _worlds().one() as world:
        import_message(record.body, world, deadline, message_id=record.message_id, delivery=delivery)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    processor = PipelinedBatchProcessor(_worlds().in_flight)  # holds the batch's results: one per invocation
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

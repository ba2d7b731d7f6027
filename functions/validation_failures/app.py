"""The validator's on-failure destination (SQS) -> end each abandoned job FAILED, with its report."""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from label_importer.runtime.observability import logger, metrics, tracer
from label_importer.runtime.settings import settings
from label_importer.services.validator_failures import fail_abandoned_validation
from label_importer.store.aws import AwsClients
from label_importer.store.jobs import JobStore
from label_importer.store.reports import ReportWriter


@cache
def _stores() -> tuple[JobStore, ReportWriter]:
    """Only the jobs and the reports: not the `World`, whose Encord half (the SDK, numpy) this function never uses
    and would import at every cold start."""
    aws, configured = AwsClients.connect(), settings()
    jobs = JobStore(configured.jobs_table_name, ttl_days=configured.record_ttl_days, resource=aws.dynamodb)
    return jobs, ReportWriter(aws.s3)


def record_handler(record: SQSRecord) -> None:
    fail_abandoned_validation(record.body, *_stores())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

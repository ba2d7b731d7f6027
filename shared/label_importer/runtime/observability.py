"""Logger, metrics and tracer shared by both functions, and the names of every metric the code emits.

Metric names live here once; the dashboard in template.yaml shows exactly the metrics the code emits
(tests/integration/test_template_matches_the_code.py records them and compares).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()

ROWS_IMPORTED = "RowsImported"
ROWS_FAILED = "RowsFailed"
ROWS_SKIPPED = "RowsSkipped"
CHUNKS_IMPORTED = "ChunksImported"
JOBS_QUEUED = "JobsQueued"
JOBS_REJECTED = "JobsRejected"
JOBS_FAILED = "JobsFailed"
JOBS_COMPLETED = "JobsCompleted"
JOBS_COMPLETED_WITH_ERRORS = "JobsCompletedWithErrors"
VALIDATION_ERRORS = "ValidationErrors"
ENCORD_REQUEST_LATENCY = "EncordRequestLatency"
ENCORD_THROTTLES = "EncordThrottles"
ENCORD_RETRIES = "EncordRetries"
LEASE_WAITS = "LeaseWaits"
ROWS_SUPERSEDED = "RowsSuperseded"
CHUNKS_REFUSED = "ChunksRefused"
CHUNKS_FAILED = "ChunksFailed"

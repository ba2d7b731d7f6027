"""Replay chunks from the dead-letter queue once whatever kept failing them is fixed.

Safe by construction: an import skips rows its job already recorded and adds no label twice, so a message
sent again (say, the move stopped between sending and deleting) costs a listing, nothing more. On AWS,
`aws sqs start-message-move-task` does the same move server-side; this one also runs against moto.
"""

from __future__ import annotations

from typing import Any


class RedriveIncomplete(Exception):
    """SQS refused to take some messages back; those are still in the dead-letter queue, and running again is safe."""

    def __init__(self, moved: int, failed: list[dict[str, Any]]) -> None:
        first = failed[0]
        super().__init__(
            f"{moved} messages moved, then {len(failed)} could not be sent back "
            f"({first.get('Code')}: {first.get('Message')}); they are still in the dead-letter queue"
        )
        self.moved = moved


def redrive(sqs: Any, dead_letter_queue_url: str, queue_url: str) -> int:
    """Move every message from the dead-letter queue back to the import queue; return how many moved."""
    moved = 0
    while messages := sqs.receive_message(
        QueueUrl=dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
    ).get("Messages", []):
        entries = [{"Id": str(i), "MessageBody": message["Body"]} for i, message in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if sent.get("Failed"):
            raise RedriveIncomplete(moved, sent["Failed"])
        sqs.delete_message_batch(
            QueueUrl=dead_letter_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        moved += len(messages)
    return moved

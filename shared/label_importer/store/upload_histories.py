"""Each data unit's upload history per branch in the jobs table (model/upload_order.py says what it means).

  pk = UNIT#<data hash>[#<branch>], sk = ORDER    history: the latest `replace` applied and the appends after it
Read under the data units' leases; written in the same transaction as the rows' outcomes (jobs.record_rows).
"""

from __future__ import annotations

import time
from typing import Any

from label_importer.model.branches import on_branch
from label_importer.model.upload_order import UnitHistory


def _key(data_hash: str, branch: str) -> dict[str, str]:
    return {"pk": on_branch(f"UNIT#{data_hash}", branch), "sk": "ORDER"}


class UploadHistories:
    def __init__(self, table_name: str, resource: Any, *, ttl_days: int) -> None:
        self._resource = resource
        self._table_name = table_name
        self._ttl_seconds = ttl_days * 86_400

    def read(self, data_hashes: list[str], *, branch: str) -> dict[str, UnitHistory]:
        """Read under the data units' leases, so no other writer changes them before this consumer records."""
        histories = {data_hash: UnitHistory() for data_hash in data_hashes}
        by_key = {_key(data_hash, branch)["pk"]: data_hash for data_hash in data_hashes}
        for start in range(0, len(data_hashes), 100):
            request: dict[str, Any] = {
                self._table_name: {
                    "Keys": [_key(data_hash, branch) for data_hash in data_hashes[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._resource.batch_get_item(RequestItems=request)
                for item in response["Responses"][self._table_name]:
                    histories[by_key[item["pk"]]] = UnitHistory.from_dict(item.get("history"))
                request = response.get("UnprocessedKeys") or {}
        return histories

    def write(self, data_hash: str, history: UnitHistory, *, branch: str) -> dict[str, Any]:
        """The transaction item that stores `history` (jobs.record_rows writes it with the row's outcome)."""
        return {
            "Put": {
                "TableName": self._table_name,
                "Item": {
                    **_key(data_hash, branch),
                    "history": history.to_dict(),
                    "expires_at": int(time.time()) + self._ttl_seconds,
                },
            }
        }

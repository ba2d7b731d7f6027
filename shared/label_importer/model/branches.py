"""Label branches: which of a data unit's label rows an import reads and writes.

Encord keeps one label row per data unit and branch. `main` is what annotators see; model predictions and
pre-labels belong on a branch of their own, so importing them never overwrites reviewed work. Everything an
import touches is therefore per (data unit, branch): the listing, the created and saved rows, the leases, the
upload histories, the journal and the rollback.

Names starting with `encord-` are Encord's own (consensus workflows create a branch per annotator, named
`encord-…`): writing there would pass machine labels off as an annotator's, so a file may not name one.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

MAIN_BRANCH = "main"
RESERVED_PREFIX = "encord-"
BRANCH_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$"
"""Letters, digits, `.`, `_`, `-` and `/`, starting with a letter or digit, at most 100 characters: names that
read the same in a URL, a log line and a DynamoDB key, whose `#` separates a key's parts."""


def _not_reserved(name: str) -> str:
    if name.lower().startswith(RESERVED_PREFIX):
        raise PydanticCustomError(
            "value_error",
            "branch names starting with 'encord-' are Encord's consensus branches, which only Encord writes; "
            "choose another name, e.g. 'predictions'",
        )
    return name


BranchName = Annotated[str, Field(pattern=BRANCH_PATTERN), AfterValidator(_not_reserved)]


def on_branch(key: str, branch: str) -> str:
    """`key` for `main`, `key#<branch>` for any other branch: the store keys of the `main` branch are those of
    the time before branches, so an upgrade finds every lease and upload history where it left them."""
    return key if branch == MAIN_BRANCH else f"{key}#{branch}"

"""How DynamoDB errors (through pynamodb or botocore) become domain outcomes: the one mapping."""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import ClientError
from pynamodb.exceptions import PynamoDBException

from reengage.ports import TransientError

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"


def raise_if_transient(error: PynamoDBException | ClientError) -> None:
    """TransientError for throttling, outages and transaction conflicts; nothing for anything else."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
    else:
        code = error.cause_response_code or ""
    if code in THROTTLING_CODES:
        raise TransientError(f"DynamoDB is throttling or unavailable: {code}") from error
    if code == TRANSACTION_CANCELED and "TransactionConflict" in str(error):
        raise TransientError("DynamoDB transaction conflict") from error


def conditionally(write: Callable[[], object]) -> bool:
    """Run a conditional write: False when its condition failed, TransientError when throttled."""
    try:
        write()
    except PynamoDBException as error:
        if error.cause_response_code in (CONDITION_FAILED, TRANSACTION_CANCELED):
            raise_if_transient(error)
            return False
        raise_if_transient(error)
        raise
    return True

"""How the DynamoDB data-access modules turn pynamodb errors into domain outcomes."""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import PynamoDBException

from reengage.ports import TransientError

_THROTTLING_CODES = frozenset(
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


def raise_if_transient(error: PynamoDBException) -> None:
    if error.cause_response_code in _THROTTLING_CODES:
        raise TransientError(f"DynamoDB is throttling or unavailable: {error.cause_response_code}") from error
    if error.cause_response_code == TRANSACTION_CANCELED and "TransactionConflict" in str(error):
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

"""The inbound-mail bucket (S3): the raw emails SES's receipt rule stores for ReplyFunction."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class MissingEmailError(LookupError):
    """The object is gone (deleted, or the event names one that never existed): retrying cannot help."""


class EmailTooLargeError(ValueError):
    """Larger than the reply reader's limit: not downloaded."""


class S3InboundMail:
    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """The raw email; other errors (throttling, access) propagate, so the invocation is retried."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "NoSuchBucket", "404", "InvalidBucketName", "KeyTooLongError"):
                raise MissingEmailError(f"s3://{bucket}/{key}: {code}") from error
            raise
        size = int(response.get("ContentLength") or 0)
        if size > max_bytes:
            response["Body"].close()
            raise EmailTooLargeError(f"{size} bytes; inbound emails are read up to {max_bytes}")
        return bytes(response["Body"].read(max_bytes + 1))

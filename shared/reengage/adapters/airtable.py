"""One Airtable table through pyairtable: records changed since a time, and batched updates.

pyairtable pages the list, splits updates into batches of 10 and retries 429 and 5xx: 5xx
with backoff, a 429 only after Airtable's 30 s lockout. On top of it, this process's requests
are paced under Airtable's limit (5 requests per second per base); other processes syncing the
same base at the same time are not counted, which is what the 30 s wait is for.
A batch Airtable refuses for one record (deleted: 404; unknown field: 422) is retried one
record at a time, so only the bad record is reported; it is not retried again.

Imported only by the sync, and only when a token is configured (pyairtable imports requests).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import requests
from pyairtable import Api
from urllib3.util import Retry

from reengage.domain.crm_sync import CrmAccessError, CrmRecord, UpdateFailure
from reengage.ports import TransientError

AIRTABLE_URL = "https://api.airtable.com"
REQUESTS_PER_SECOND = 5.0
_PAGE_SIZE = 100
_BATCH = 10
_WINDOW = 1.1  # seconds: Airtable's one second, and a margin for jitter on the way
_TRANSIENT = frozenset({429, 500, 502, 503, 504})
RATE_LIMIT_PAUSE = 30.0  # seconds Airtable refuses a base's requests after a 429


class _AirtableRetry(Retry):
    """pyairtable's retry (urllib3), except that after a 429 it waits out Airtable's lockout: Airtable
    refuses every request to the base for 30 seconds after one, so a quicker retry only earns
    another 429."""

    rate_limit_pause = RATE_LIMIT_PAUSE

    def sleep(self, response: Any = None) -> None:
        if response is not None and response.status == 429:
            time.sleep(max(self.get_retry_after(response) or 0.0, self.get_backoff_time(), self.rate_limit_pause))
            return
        super().sleep(response)


class _PacedApi(Api):
    """pyairtable's Api, its requests held back so that no second sees more than the base allows.

    A sliding window: a request starts only when the `limit`-th request before it started more
    than a second (plus a margin for the network's jitter) ago."""

    def __init__(self, *args: Any, requests_per_second: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit = int(requests_per_second or 0)
        self._starts: deque[float] = deque()
        self._pace_lock = threading.Lock()
        self.waited = 0.0  # seconds spent holding requests back (the benchmark reports it)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self._limit:
            with self._pace_lock:
                if len(self._starts) >= self._limit:
                    wait = self._starts[0] + _WINDOW - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                        self.waited += wait
                    self._starts.popleft()
                self._starts.append(time.monotonic())
        return super().request(method, url, *args, **kwargs)


def _status(error: requests.HTTPError) -> int:
    return error.response.status_code if error.response is not None else 0


def _reason(error: requests.HTTPError) -> str:
    response = error.response
    if response is None:
        return str(error)
    try:
        detail = response.json().get("error", {})
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(detail, dict):
        return f"HTTP {response.status_code} {detail.get('type', '')}: {detail.get('message', '')}".strip()
    return f"HTTP {response.status_code} {detail}"


class AirtableTable:
    """A table of one base. `requests_per_second=None` turns pacing off (the rate-limit tests)."""

    def __init__(
        self,
        token: str,
        base_id: str,
        table_id: str,
        api_url: str = AIRTABLE_URL,
        requests_per_second: float | None = REQUESTS_PER_SECOND,
        retries: int = 6,
        timeout: tuple[float, float] = (5.0, 30.0),
        rate_limit_pause: float = RATE_LIMIT_PAUSE,
    ) -> None:
        # 5xx: backoff 0.25 s, 0.5 s, 1 s ...; a 429: Airtable's 30 s lockout waited out first.
        retry_class = type("_Retry", (_AirtableRetry,), {"rate_limit_pause": rate_limit_pause})
        retry = retry_class(
            total=retries, backoff_factor=0.25, status_forcelist=tuple(sorted(_TRANSIENT)), allowed_methods=None
        )
        self.api = _PacedApi(
            token, timeout=timeout, retry_strategy=retry, endpoint_url=api_url, requests_per_second=requests_per_second
        )
        self.table = self.api.table(base_id, table_id)

    def changed_since(self, cursor: str | None) -> Iterator[list[CrmRecord]]:
        """Pages of records modified after `cursor` (every record when None).

        The next page is fetched while the caller works on this one (one page ahead), so the
        rate limit, not the caller's writes, sets the pace."""
        options: dict[str, Any] = {"page_size": _PAGE_SIZE}
        if cursor:
            options["formula"] = f"IS_AFTER(LAST_MODIFIED_TIME(), '{cursor}')"
        pages: queue.Queue[list[CrmRecord] | Exception | None] = queue.Queue(maxsize=1)
        stop = threading.Event()

        def fetch() -> None:
            try:
                for page in self.table.iterate(**options):
                    records = [CrmRecord(record["id"], dict(record.get("fields", {}))) for record in page]
                    while not stop.is_set():
                        try:
                            pages.put(records, timeout=0.5)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                pages.put(None)
            except requests.HTTPError as error:
                pages.put(self._failure(error))
            except requests.RequestException as error:
                pages.put(TransientError(f"Airtable unreachable: {error}"))

        fetcher = threading.Thread(target=fetch, name="airtable-pages", daemon=True)
        fetcher.start()
        try:
            while (item := pages.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop.set()
            fetcher.join(timeout=5)

    def update(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> list[UpdateFailure]:
        """Write fields on records, 10 per request; returns the records Airtable refused."""
        failures: list[UpdateFailure] = []
        for start in range(0, len(updates), _BATCH):
            chunk = updates[start : start + _BATCH]
            try:
                self.table.batch_update([{"id": rid, "fields": fields} for rid, fields in chunk])
            except requests.HTTPError as error:
                if _status(error) in _TRANSIENT:
                    raise TransientError(f"Airtable: {_reason(error)}") from error
                failures.extend(self._one_by_one(chunk))
            except requests.RequestException as error:
                raise TransientError(f"Airtable unreachable: {error}") from error
        return failures

    def _one_by_one(self, chunk: Sequence[tuple[str, dict[str, Any]]]) -> list[UpdateFailure]:
        failures = []
        for record_id, fields in chunk:
            try:
                self.table.update(record_id, fields)
            except requests.HTTPError as error:
                if _status(error) in _TRANSIENT:
                    raise TransientError(f"Airtable: {_reason(error)}") from error
                failures.append(UpdateFailure(record_id, _status(error), _reason(error)))
        return failures

    @staticmethod
    def _failure(error: requests.HTTPError) -> Exception:
        if _status(error) in _TRANSIENT:
            return TransientError(f"Airtable: {_reason(error)}")
        return CrmAccessError(f"Airtable refused the request: {_reason(error)}")

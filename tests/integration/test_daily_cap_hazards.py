"""The daily cap (MAX_SENDS_PER_DAY) under a changed shard count and a lost answer, on the emulator."""

from __future__ import annotations

import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ReadTimeoutError

from reengage import wiring
from reengage.adapters.send_ledger import DailySendsModel
from reengage.ports import Quota
from tests.conftest import Emulator

CAP = 200


def fill(quota: Quota, day: str) -> int:
    sent = 0
    while quota.reserve_up_to(day, CAP, 1) is not None:
        sent += 1
    return sent


def test_changing_the_shard_count_mid_day_keeps_the_cap(aws: Emulator) -> None:
    # ScheduleShards is a deploy parameter: a deploy may change it in the middle of a UTC day
    day = datetime.now(UTC).date().isoformat()
    before = fill(wiring.stores(replace(aws.settings, schedule_shards=16)).quota, day)
    after = fill(wiring.stores(replace(aws.settings, schedule_shards=32)).quota, day)
    assert (before, after) == (CAP, 0)


def test_a_give_back_whose_answer_was_lost_is_applied_once(aws: Emulator) -> None:
    day = datetime.now(UTC).date().isoformat()
    quota = wiring.stores(aws.settings).quota
    reservation = quota.reserve_up_to(day, CAP, 10)
    assert reservation is not None and reservation.count == 10
    client: Any = DailySendsModel._get_connection().connection.client
    lost: list[int] = []

    def lose_answer(request: Any, **_: Any) -> None:
        if lost:
            return
        lost.append(1)
        real = urllib.request.Request(request.url, data=request.body, headers=dict(request.headers), method="POST")
        urllib.request.urlopen(real, timeout=10).read()  # noqa: S310 - loopback: DynamoDB applies it
        raise ReadTimeoutError(endpoint_url=request.url)  # ... and the answer is lost: the SDK retries

    client.meta.events.register_first("before-send.dynamodb.TransactWriteItems", lose_answer)
    try:
        quota.release(reservation, 9)  # the batch sent 1 of its 10
    finally:
        client.meta.events.unregister("before-send.dynamodb.TransactWriteItems", lose_answer)
    assert lost and quota.used(day) == 1

"""Every email carries one-click unsubscribe; using it stops the lead for good (emulator, real HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from reengage import wiring
from tests.conftest import Emulator, FakeLambdaContext, load_event, load_handler
from tests.integration.test_pipeline import as_sqs_event, lead_row, receive_all, seed


def campaign(aws: Emulator) -> None:
    load_handler("scheduler").lambda_handler(load_event("scheduled"), FakeLambdaContext())
    load_handler("sender").lambda_handler(as_sqs_event(receive_all(aws.settings.queue_url)), FakeLambdaContext())


def test_one_click_post_stops_the_sequence(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1), lead_row(2)])
    campaign(aws)
    mails = {mail.to: mail for mail in aws.outbox()}
    mail = mails["Person 1 <person1@example.com>"]
    # The headers Gmail and Yahoo require, and a visible link
    header = mail.headers["List-Unsubscribe"]
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = header.strip("<>").split(">")[0]
    assert url.startswith(aws.endpoint + "/reengage/unsubscribe?lead=lead-001&token=")
    assert url in mail.text and "Unsubscribe</a>" in mail.html
    # The mail provider's one-click POST: 200, no redirect
    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback emulator
        assert response.status == 200 and response.geturl() == url
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.response_status == "Unsubscribed" and lead.suppressed
    # A forged token is refused and changes nothing
    forged = url.replace("lead=lead-001", "lead=lead-002")
    try:
        urllib.request.urlopen(urllib.request.Request(forged, data=b"", method="POST"), timeout=30)  # noqa: S310
        raise AssertionError("a forged link was accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 403
    other = wiring.stores(aws.settings).leads.get("lead-002")
    assert other is not None and other.response_status == "No Response"


def test_unsubscribe_function_handles_the_function_url_event(aws: Emulator, tmp_path: Path) -> None:
    seed(aws, tmp_path, [lead_row(1)])
    campaign(aws)
    (mail,) = aws.outbox()
    token = mail.headers["List-Unsubscribe"].split("token=")[1].split(">")[0]
    event = load_event("unsubscribe-one-click")
    event["queryStringParameters"] = {"lead": "lead-001", "token": token}
    response = load_handler("unsubscribe").lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200 and "Location" not in response["headers"]
    lead = wiring.stores(aws.settings).leads.get("lead-001")
    assert lead is not None and lead.response_status == "Unsubscribed"
    sample = load_handler("unsubscribe").lambda_handler(load_event("unsubscribe-one-click"), FakeLambdaContext())
    assert sample["statusCode"] == 403  # the sample event's placeholder token is not a real one
    assert json.dumps(sample)

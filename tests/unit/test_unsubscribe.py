"""Signed one-click unsubscribe links and the endpoint's answers (RFC 8058: POST, no redirect)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from reengage.unsubscribe import (
    ONE_CLICK_BODY,
    InvalidTokenError,
    UnsubscribeLinks,
    check_token,
    handle_request,
    make_token,
)
from tests.conftest import NOW
from tests.fakes import InMemoryLeadStore
from tests.unit.test_scheduler import lead

KEY = b"k" * 48


def test_a_token_works_for_its_lead_only_until_it_expires():
    token = make_token("lead-001", KEY, NOW)
    check_token("lead-001", token, KEY, NOW + timedelta(days=399))
    with pytest.raises(InvalidTokenError, match="not issued by us"):
        check_token("lead-002", token, KEY, NOW)
    with pytest.raises(InvalidTokenError, match="not issued by us"):
        check_token("lead-001", token, b"another key", NOW)
    expires, signature = token.split(".")
    with pytest.raises(InvalidTokenError, match="not issued by us"):
        check_token("lead-001", f"{int(expires) + 86400 * 365}.{signature}", KEY, NOW)  # a longer life, forged
    with pytest.raises(InvalidTokenError, match="expired"):
        check_token("lead-001", token, KEY, NOW + timedelta(days=401))
    with pytest.raises(InvalidTokenError, match="malformed"):
        check_token("lead-001", "garbage", KEY, NOW)


def test_links_and_headers():
    links = UnsubscribeLinks("https://u.example/", key=lambda: KEY, mailto="unsubscribe@example.com")
    url = links.url("lead 1/x", NOW)
    params = dict(parse_qsl(urlsplit(url).query))
    check_token(params["lead"], params["token"], KEY, NOW)
    headers = links.headers(url)
    assert headers["List-Unsubscribe"] == f"<{url}>, <mailto:unsubscribe@example.com?subject=unsubscribe>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_get_confirms_post_unsubscribes_without_redirect():
    store = InMemoryLeadStore([lead(1)])
    params = {"lead": "lead-001", "token": make_token("lead-001", KEY, NOW)}
    page = handle_request("GET", params, "", KEY, store, NOW, 2)
    assert page.status == 200 and "<form method='post'" in page.body
    assert store.leads["lead-001"].response_status == "No Response"  # a GET (link scanner) changes nothing
    done = handle_request("POST", params, ONE_CLICK_BODY, KEY, store, NOW, 2)
    assert done.status == 200 and "unsubscribed" in done.body
    unsubscribed = store.leads["lead-001"]
    assert unsubscribed.response_status == "Unsubscribed" and unsubscribed.suppressed
    assert unsubscribed.engagement_history[-1]["source"] == "one-click"
    assert store.is_suppressed("person1@example.com")
    assert handle_request("POST", params, ONE_CLICK_BODY, KEY, store, NOW, 2).status == 200  # idempotent


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"lead": "lead-001", "token": make_token("lead-002", KEY, NOW)}, 403),
        ({"lead": "lead-001", "token": make_token("lead-001", KEY, NOW - timedelta(days=500))}, 403),
        ({"lead": "lead-001"}, 403),
        ({}, 403),
    ],
)
def test_forged_expired_and_missing_tokens_change_nothing(params, status):
    store = InMemoryLeadStore([lead(1)])
    assert handle_request("POST", params, ONE_CLICK_BODY, KEY, store, NOW, 2).status == status
    assert store.leads["lead-001"].response_status == "No Response"


def test_other_methods_are_refused():
    store = InMemoryLeadStore([lead(1)])
    params = {"lead": "lead-001", "token": make_token("lead-001", KEY, NOW)}
    assert handle_request("DELETE", params, "", KEY, store, NOW, 2).status == 405

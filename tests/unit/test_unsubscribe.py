"""Signed one-click unsubscribe links and the endpoint's answers (RFC 8058: POST, no redirect)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from reengage.adapters.ses_mailer import headers
from reengage.domain.leads import FollowUpPolicy
from reengage.domain.messages import OutgoingEmail
from reengage.domain.unsubscribe import ONE_CLICK_BODY, InvalidTokenError, UnsubscribeLinks, check_token, make_token
from reengage.services.responses import unsubscribe_request
from tests.conftest import NOW
from tests.fakes import InMemoryTables
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
    links = UnsubscribeLinks("https://u.example/", key=lambda: KEY)
    url = links.url("lead 1/x", NOW)
    params = dict(parse_qsl(urlsplit(url).query))
    check_token(params["lead"], params["token"], KEY, NOW)
    email = OutgoingEmail("a@example.com", "A", "s", "t", "<p>h</p>", unsubscribe_url=url)
    values = headers(email, unsubscribe_mailto="unsubscribe@example.com")
    assert values["List-Unsubscribe"] == f"<{url}>, <mailto:unsubscribe@example.com?subject=unsubscribe>"
    assert values["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_get_confirms_post_unsubscribes_without_redirect():
    store = InMemoryTables([lead(1)])
    params = {"lead": "lead-001", "token": make_token("lead-001", KEY, NOW)}
    page = unsubscribe_request("GET", params, "", KEY, store.stores, NOW, FollowUpPolicy())
    assert page.status == 200 and "<form method='post'" in page.body
    assert store.leads["lead-001"].response_status == "No Response"  # a GET (link scanner) changes nothing
    done = unsubscribe_request("POST", params, ONE_CLICK_BODY, KEY, store.stores, NOW, FollowUpPolicy())
    assert done.status == 200 and "unsubscribed" in done.body
    unsubscribed = store.leads["lead-001"]
    assert unsubscribed.response_status == "Unsubscribed" and unsubscribed.suppressed
    assert unsubscribed.engagement_history[-1]["source"] == "one-click"
    assert store.is_suppressed("person1@example.com")
    assert (
        unsubscribe_request("POST", params, ONE_CLICK_BODY, KEY, store.stores, NOW, FollowUpPolicy()).status == 200
    )  # idempotent


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
    store = InMemoryTables([lead(1)])
    assert (
        unsubscribe_request("POST", params, ONE_CLICK_BODY, KEY, store.stores, NOW, FollowUpPolicy()).status == status
    )
    assert store.leads["lead-001"].response_status == "No Response"


def test_other_methods_are_refused():
    store = InMemoryTables([lead(1)])
    params = {"lead": "lead-001", "token": make_token("lead-001", KEY, NOW)}
    assert unsubscribe_request("DELETE", params, "", KEY, store.stores, NOW, FollowUpPolicy()).status == 405

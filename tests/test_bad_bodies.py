"""Broken answers of every shape get a named diagnosis, never an exception from httpx, json or
jwt; hypothesis fuzzes the parsers behind them."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pytest_kvmi.answers import MAX_BODY, Answer
from pytest_kvmi.challenge import parse_challenge
from pytest_kvmi.diagnosis import Code, Facts, KvmiError
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.imds_classify import classify_error
from pytest_kvmi.redact import Redacted
from pytest_kvmi.token import AccessToken
from pytest_kvmi.vault import VaultClient
from pytest_kvmi.vault_classify import classify_answer, message_facts
from tests.fakes import FakeClock, settings, static_tokens, vault_handler

BAD_BODIES = [
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b'{"access_token": "abc', "application/json", id="truncated-json"),
    pytest.param(b"<html><body>Login</body></html>", "text/html", id="html"),
    pytest.param(b"[1, 2, 3]", "application/json", id="json-array"),
    pytest.param(b'{"error": 5}', "application/json", id="wrong-shape"),
    pytest.param(b'"just a string"', "application/json", id="json-string"),
    pytest.param(b"\xff\xfe\x00garbage", "application/octet-stream", id="binary"),
    pytest.param(b'{"access_token": "not-a-jwt"}', "application/json", id="token-not-jwt"),
    pytest.param(b"{" * 100_000, "application/json", id="deep-nesting"),
    pytest.param(b'{"x": "' + b"a" * (MAX_BODY + 10) + b'"}', "application/json", id="huge"),
    pytest.param(b'{"value": 1}', "text/plain", id="wrong-content-type"),
]


@pytest.mark.parametrize("status", [200, 400, 403, 404, 410, 429, 500, 502])
@pytest.mark.parametrize(("body", "content_type"), BAD_BODIES)
def test_imds_bad_bodies_are_named(status: int, body: bytes, content_type: str) -> None:
    clock = FakeClock()
    response = httpx.Response(status, content=body, headers={"Content-Type": content_type})
    transport = httpx.MockTransport(lambda request: response)
    client = ImdsClient(settings(), transport=transport, sleep=clock.sleep, clock=clock)
    with client, pytest.raises(KvmiError) as raised:
        client.token()
    assert raised.value.diagnosis.code is not Code.OK


@pytest.mark.parametrize("status", [200, 401, 403, 404, 429, 500])
@pytest.mark.parametrize(("body", "content_type"), BAD_BODIES)
def test_vault_bad_bodies_are_named(status: int, body: bytes, content_type: str) -> None:
    clock = FakeClock()
    response = httpx.Response(status, content=body, headers={"Content-Type": content_type})
    client = VaultClient(
        settings(vault="kv1"),
        static_tokens(),
        transport=httpx.MockTransport(vault_handler(lambda request: response)),
        sleep=clock.sleep,
        clock=clock,
    )
    with client, pytest.raises(KvmiError) as raised:
        client.get_secret("db")
    assert raised.value.diagnosis.code is not Code.OK


def answers() -> st.SearchStrategy[Answer]:
    json_ish = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )
    error_shaped = st.fixed_dictionaries(
        {
            "error": st.fixed_dictionaries(
                {"code": json_ish, "message": json_ish, "innererror": json_ish}
            )
        }
    )
    bodies = st.one_of(
        st.binary(max_size=200),
        json_ish.map(lambda v: json.dumps(v).encode()),
        error_shaped.map(lambda v: json.dumps(v).encode()),
    )
    headers = st.dictionaries(
        st.sampled_from(["content-type", "www-authenticate", "retry-after", "location"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    )
    return st.builds(
        lambda status, h, body: Answer(status, httpx.Headers(h), Redacted(body)),
        st.integers(100, 599),
        headers,
        bodies,
    )


FACTS = Facts(imds_endpoint="http://169.254.169.254")
FUZZ = hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(answers())
def test_fuzz_imds_classification(answer: Answer) -> None:
    assert isinstance(classify_error(answer, FACTS).code, Code)


@FUZZ
@given(answers())
def test_fuzz_vault_classification(answer: Answer) -> None:
    assert isinstance(classify_answer(answer, FACTS).code, Code)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_challenge_and_messages(text: str) -> None:
    challenge = parse_challenge(text)
    assert challenge is None or isinstance(challenge.audience, (str, type(None)))
    message_facts(text)


@FUZZ
@given(
    st.text(max_size=200)
    | st.from_regex(r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,10}")
)
def test_fuzz_token_parsing(raw: str) -> None:
    outcome: Code = Code.OK
    try:
        AccessToken.parse(raw)
    except KvmiError as error:
        outcome = error.diagnosis.code
    assert outcome in (Code.OK, Code.TOKEN_MALFORMED)

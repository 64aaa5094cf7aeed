"""A canary token and a canary secret value never appear in a repr, str, exception message,
traceback with locals, or log record, on success or on any failure path."""

from __future__ import annotations

import logging
import pickle
import traceback

import httpx
import pytest

from pytest_kvmi.diagnosis import KvmiError
from pytest_kvmi.imds import ImdsClient
from pytest_kvmi.redact import Redacted
from pytest_kvmi.token import AccessToken
from pytest_kvmi.vault import VaultClient
from tests.fakes import (
    FakeClock,
    capture_names,
    capture_response,
    imds_token_body,
    load_capture,
    make_jwt,
    settings,
    vault_handler,
)

SECRET_CANARY = "canary-secret-value-7f3a9c"
TOKEN = make_jwt(canary="canary-token-claim-51be")
CANARIES = (SECRET_CANARY, TOKEN, TOKEN.split(".")[2], "canary-token-claim-51be")
SECRET_BODY = {
    "value": SECRET_CANARY,
    "id": "https://kv1.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef",
    "attributes": {"enabled": True},
}


def assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text


def text_of(error: BaseException) -> str:
    """What a traceback with locals (pytest -l / --tb=long) shows of ``error`` from the
    package's own frames (the test's frames hold the canaries on purpose)."""
    rendered = traceback.TracebackException.from_exception(error)
    own_locals = [
        f"{name} = {value!r}"
        for frame, _ in traceback.walk_tb(error.__traceback__)
        if "pytest_kvmi" in frame.f_code.co_filename
        for name, value in frame.f_locals.items()
    ]
    assert own_locals, "the error should come from the package's own frames"
    return "".join(rendered.format()) + "\n".join(own_locals) + repr(error) + str(error)


def test_redacted_never_shows_its_value() -> None:
    wrapped = Redacted(SECRET_CANARY)
    percent = "%s" % (wrapped,)  # noqa: UP031 - logging formats its arguments this way
    assert_clean(repr(wrapped) + str(wrapped) + f"{wrapped}" + f"{wrapped!r:>40}" + percent)
    assert wrapped.reveal() == SECRET_CANARY
    assert wrapped == Redacted(SECRET_CANARY)
    with pytest.raises(TypeError):
        pickle.dumps(wrapped)


def test_token_never_shows_its_raw_form() -> None:
    token = AccessToken.parse(TOKEN)
    assert_clean(repr(token) + str(token) + f"{token}" + repr(token.claims) + repr(token.facts()))
    assert token.bearer() == TOKEN
    with pytest.raises(TypeError):
        pickle.dumps(token)


def flows(caplog: pytest.LogCaptureFixture, vault_answer: httpx.Response) -> list[BaseException]:
    """Get a token and read a secret through every logger at DEBUG; return the errors raised."""
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    errors: list[BaseException] = []
    imds_transport = httpx.MockTransport(
        lambda request: httpx.Response(200, json=imds_token_body(TOKEN))
    )
    with ImdsClient(settings(), transport=imds_transport) as imds:
        token = imds.token()
    vault = VaultClient(
        settings(vault="kv1"),
        imds.token,
        transport=httpx.MockTransport(vault_handler(lambda request: vault_answer)),
        sleep=clock.sleep,
        clock=clock,
    )
    with vault:
        try:
            bundle = vault.get_secret("db", token)
            assert_clean(repr(bundle) + str(bundle))
        except KvmiError as error:
            errors.append(error)
    return errors


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(200, json=SECRET_BODY)]
    + [capture_response(load_capture(name)) for name in capture_names("keyvault")]
    + [httpx.Response(200, json={**SECRET_BODY, "id": 5}), httpx.Response(500, text=SECRET_CANARY)],
)
def test_no_canary_in_logs_or_errors(
    caplog: pytest.LogCaptureFixture, answer: httpx.Response
) -> None:
    errors = flows(caplog, answer)
    assert_clean("\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records))
    for error in errors:
        assert_clean(text_of(error))


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": TOKEN.replace(".", "", 1)},  # not a JWT
        {"access_token": TOKEN + ".x"},
        {"access_token": 42, "token": TOKEN},
    ],
)
def test_no_canary_when_the_imds_answer_is_broken(
    caplog: pytest.LogCaptureFixture, body: object
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    with ImdsClient(settings(), transport=transport) as imds, pytest.raises(KvmiError) as raised:
        imds.token()
    assert_clean(text_of(raised.value))
    assert_clean("\n".join(r.getMessage() for r in caplog.records))

"""Random requests never make the core fail: no 500, no exception escaping the WSGI app."""

from __future__ import annotations

import io
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_kvmi.emulator import Clock, Emulator

EMU = Emulator.demo(clock=Clock(start=1_700_000_000))
EMU.add_vault("policy", permission_model="access-policy")
EMU.grant("system", "Key Vault Secrets Officer", "vault:demo/secrets/app-secret")
TOKEN = EMU.mint_token()

segments = st.sampled_from(
    ["metadata", "identity", "oauth2", "token", "instance", "compute", "secrets", "app-secret",
     "versions", "scheduledevents", "discovery", "keys", ".well-known", "", "x_y", "%00", "a" * 130,
     "0" * 32, EMU.tenant_id]
)  # fmt: skip
hosts = st.sampled_from(
    ["169.254.169.254", "demo.vault.azure.net", "policy.vault.azure.net:443", "nope.vault.azure.cn",
     "login.microsoftonline.com", "example.com", "", "[::1]:8080"]
)  # fmt: skip
query_keys = st.sampled_from(
    ["api-version", "resource", "client_id", "object_id", "msi_res_id", "mi_res_id", "maxresults",
     "$skiptoken", "format", "bypass_cache"]
)  # fmt: skip
query_values = st.one_of(
    st.sampled_from(
        ["2018-02-01", "7.4", "2016-10-01", "https://vault.azure.net", "true", "3", "text"]
    ),
    st.text(max_size=20),
)
headers = st.dictionaries(
    st.sampled_from(
        ["HTTP_METADATA", "HTTP_AUTHORIZATION", "HTTP_X_FORWARDED_FOR", "CONTENT_LENGTH"]
    ),
    st.one_of(
        st.sampled_from(["true", f"Bearer {TOKEN}", "Bearer x.y.z", "5", "-1"]),
        st.text(max_size=30),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "POST", "HEAD", "OPTIONS", "BREW"]),
    parts=st.lists(segments, max_size=5),
    host=hosts,
    query=st.lists(st.tuples(query_keys, query_values), max_size=5),
    extra=headers,
    body=st.binary(max_size=64),
    remote=st.sampled_from(["203.0.113.9", "::1", "", "not-an-ip"]),
)
def test_random_requests_never_fail(
    method: str,
    parts: list[str],
    host: str,
    query: list[tuple[str, str]],
    extra: dict[str, str],
    body: bytes,
    remote: str,
) -> None:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/" + "/".join(parts),
        "QUERY_STRING": urlencode(query),
        "HTTP_HOST": host,
        "REMOTE_ADDR": remote,
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        **extra,
    }
    seen: list[str] = []
    chunks = EMU.wsgi_app(environ, lambda status, response_headers: seen.append(status))
    assert len(seen) == 1
    assert not seen[0].startswith("5"), (seen, environ)
    assert isinstance(b"".join(chunks), bytes)

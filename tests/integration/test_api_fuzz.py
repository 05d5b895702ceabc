"""The API fuzzed with generated bodies: no 5xx, one-line errors naming what was wrong."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROCESS = "/api/v1/prompts/process"

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    st.text(max_size=200),
    json_values,
    st.just(""),
    st.just("test"),
    st.sampled_from(["acme-tiny", "no-such-ws", "test\x00", "ŝpëçïål", "../../etc/passwd"]),
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "prompt": field_values,
            "workspaceId": field_values,
            "source": field_values,
            "extra": json_values,
        },
    ),
    json_values,
)
raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 3000).map(lambda d: ("[" * d + "]" * d).encode()),
    st.integers(1, 3000).map(
        lambda d: ('{"prompt":' + '{"a":' * d + "1" + "}" * d + ',"workspaceId":"test"}').encode()
    ),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies)
def test_generated_json_bodies_never_5xx(api_client, body):
    r = api_client.post(
        PROCESS, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err and "\n" not in err


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=raw_bodies)
def test_raw_bytes_never_5xx(api_client, raw):
    r = api_client.post(PROCESS, content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    assert r.status_code in (200, 413, 422), r.text


def test_fuzz_left_the_server_healthy(api_client):
    from prometheus_client.parser import text_string_to_metric_families

    assert api_client.get("/health").status_code == 200
    fams = {
        f.name: f
        for f in text_string_to_metric_families(api_client.get("/metrics/prometheus").text)
    }
    server_errors = [
        s
        for s in fams["axon_requests"].samples
        if s.name == "axon_requests_total"
        and s.labels["endpoint"] == PROCESS
        and s.labels["status"].startswith("5")
        and s.value
    ]
    assert server_errors == []

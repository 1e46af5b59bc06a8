#!/usr/bin/env python3
"""Writes SigV4 interop fixtures signed by botocore, an implementation independent of Wharf's.

Each fixture is a request to an `execute-api` destination in `us-east-1`, signed by
`botocore.auth.SigV4Auth` at a frozen time, written as JSON to
crates/auth/tests/fixtures/sigv4/botocore/<name>.json. `crates/auth/tests/sigv4.rs` checks that
Wharf's verifier accepts every one and that Wharf's signer (aws-sigv4) produces the same
Authorization header for the same request and time.

Run from the repository root:  python3 scripts/sigv4_fixtures.py
Needs botocore (pip install botocore); the checked-in fixtures were made with botocore 1.43.

Fixture fields:
  name, description, botocore_version
  method, url            the request as sent on the wire (percent-encoded URL)
  timestamp              X-Amz-Date (YYYYMMDDTHHMMSSZ), the frozen signing time
  region, service, access_key, secret_key, session_token   (test credentials, not real)
  input_headers          [name, value] pairs the caller gave the signer
  sent_headers           [name, value] pairs on the wire: Host, input headers, X-Amz-Date,
                         X-Amz-Security-Token, X-Amz-Content-SHA256, Authorization
  body_base64            the exact body bytes
  comparable_with_sign   true when botocore signed x-amz-content-sha256 too, so Wharf's
                         sign() (which always sends it) must produce the same Authorization
  botocore_canonical_request, botocore_string_to_sign   for diagnosing a mismatch
"""

import base64
import datetime
import hashlib
import json
import os
import sys
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
SERVICE = "execute-api"
ACCESS_KEY = "AKIDWHARFEXAMPLE"
SECRET_KEY = "wharf/Example+Secret/Key0123456789abcdefEXAMPLE"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLEtoken+with/slashes=="
OUT_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "auth", "tests", "fixtures", "sigv4", "botocore",
)

REDOX_BODY = json.dumps(
    {
        "Meta": {
            "DataModel": "PatientAdmin",
            "EventType": "Arrival",
            "EventDateTime": "2024-05-01T11:59:58.000Z",
            "Test": True,
            "Source": {"ID": "7ce6f387-c33c-417d-8682-81e83628cbd9", "Name": "Redox Dev Tools"},
            "Destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9", "Name": "Wharf"}],
            "Message": {"ID": 5565},
        },
        "Patient": {
            "Identifiers": [{"ID": "0000000001", "IDType": "MR"}],
            "Demographics": {"FirstName": "Timothy", "LastName": "Bixby", "Sex": "Male"},
        },
    },
    separators=(",", ":"),
).encode()


class RecordingSigV4Auth(botocore.auth.SigV4Auth):
    """SigV4Auth that keeps the canonical request and string to sign it computed."""

    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request

    def string_to_sign(self, request, canonical_request):
        self.last_string_to_sign = super().string_to_sign(request, canonical_request)
        return self.last_string_to_sign


def frozen(timestamp):
    """Patches the clock botocore.auth reads (it imports get_current_datetime from compat)."""
    instant = datetime.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ")
    return mock.patch.object(
        botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: instant
    )


def make_fixture(
    name,
    description,
    method,
    url,
    headers=(),
    body=b"",
    params=None,
    session_token=None,
    send_content_sha256=True,
    timestamp="20240501T120000Z",
):
    request = AWSRequest(method=method, url=url, data=body, params=params or {})
    # HTTPHeaders keeps repeated names, as a real request can carry them.
    for header_name, header_value in headers:
        request.headers[header_name] = header_value
    input_headers = [[n, v] for n, v in headers]
    if send_content_sha256:
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()

    credentials = Credentials(ACCESS_KEY, SECRET_KEY, session_token)
    signer = RecordingSigV4Auth(credentials, SERVICE, REGION)
    with frozen(timestamp):
        signer.add_auth(request)

    wire_url = request.prepare().url
    sent_headers = [["Host", botocore.auth._host_from_url(wire_url)]]
    sent_headers += [[n, v] for n, v in request.headers.items()]
    assert request.context["timestamp"] == timestamp
    return {
        "name": name,
        "description": description,
        "botocore_version": botocore.__version__,
        "method": method,
        "url": wire_url,
        "timestamp": timestamp,
        "region": REGION,
        "service": SERVICE,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "session_token": session_token,
        "input_headers": input_headers,
        "sent_headers": sent_headers,
        "body_base64": base64.b64encode(body).decode(),
        "comparable_with_sign": send_content_sha256,
        "botocore_canonical_request": signer.last_canonical_request,
        "botocore_string_to_sign": signer.last_string_to_sign,
    }


def fixtures():
    json_headers = [("Content-Type", "application/json")]
    yield make_fixture(
        "post-json",
        "A Redox JSON message POSTed to a destination on a non-default port.",
        "POST",
        "https://dest.example.com:8443/redox",
        json_headers,
        REDOX_BODY,
    )
    yield make_fixture(
        "post-json-no-content-sha256",
        "As post-json, signed the way botocore signs execute-api by default: without "
        "x-amz-content-sha256, so the verifier hashes the body itself.",
        "POST",
        "https://dest.example.com:8443/redox",
        json_headers,
        REDOX_BODY,
        send_content_sha256=False,
    )
    yield make_fixture(
        "path-spaces-unicode",
        "Percent-encoded spaces and UTF-8 in the path: signed double-encoded (%2520, %25C3).",
        "POST",
        "https://dest.example.com:8443/inbox/m%C3%BCller%20files/r%C3%A9sum%C3%A9.json",
        json_headers,
        b'{"ok":true}',
    )
    yield make_fixture(
        "path-reserved-characters",
        "Sub-delimiters and @ : left raw in the path, %3D already encoded (the execute-api "
        "WebSocket @connections form).",
        "GET",
        "https://dest.example.com/redox/@connections/JBDvjfGEIAMCERw%3D/a:b;c=d!$'()*,~x",
    )
    yield make_fixture(
        "path-dot-segments",
        "Empty and dot segments, which both signers remove before encoding.",
        "GET",
        "https://dest.example.com/redox//v1/./batch/../items/",
    )
    yield make_fixture(
        "query-repeated-and-special",
        "Repeated keys out of order, encoded slash and UTF-8, empty value, key without '=', "
        "tilde, encoded space.",
        "GET",
        "https://dest.example.com/redox/query?b=2&a=3&a=1&c=x%2Fy&d=%E2%9C%93&empty=&flag"
        "&tilde=~&sp=a%20b",
    )
    yield make_fixture(
        "query-params-plus",
        "Query given as botocore params: spaces go on the wire as '+', signed as %20; a literal "
        "plus goes as %2B.",
        "GET",
        "https://dest.example.com/redox/search",
        params=[("q", "hello world"), ("q", "a+b"), ("z", "~"), ("name", "Müller")],
    )
    yield make_fixture(
        "session-token",
        "Temporary credentials: X-Amz-Security-Token is sent and signed.",
        "POST",
        "https://dest.example.com:8443/redox",
        json_headers,
        REDOX_BODY,
        session_token=SESSION_TOKEN,
    )
    yield make_fixture(
        "empty-body-get",
        "A GET with no body (hash of the empty string), on a day boundary of a leap day.",
        "GET",
        "https://dest.example.com/redox/health",
        timestamp="20240229T235959Z",
    )
    yield make_fixture(
        "header-extra-spaces",
        "Header values with leading, trailing and repeated spaces, which are trimmed and "
        "collapsed when signed.",
        "POST",
        "https://dest.example.com:8443/redox",
        json_headers + [("X-Redox-Note", "  lots   of    spaces  here "), ("X-Quoted", '"a   b   c"')],
        REDOX_BODY,
    )
    yield make_fixture(
        "mixed-case-and-repeated-headers",
        "Mixed-case header names (signed lowercase) and one header repeated (values joined "
        "with commas in order).",
        "PUT",
        "https://dest.example.com:8443/redox/Patient/123",
        [
            ("Content-TYPE", "application/fhir+json"),
            ("X-Custom-Header", "Alpha"),
            ("x-CUSTOM-other", "beta"),
            ("X-Repeated", "second"),
            ("X-Repeated", "first"),
        ],
        b'{"resourceType":"Patient","id":"123"}',
    )
    yield make_fixture(
        "binary-body",
        "A body that is not UTF-8.",
        "PUT",
        "https://dest.example.com:8443/redox/blob",
        [("Content-Type", "application/octet-stream")],
        bytes((i * 37 + 11) % 256 for i in range(700)),
    )


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    written = 0
    for fixture in fixtures():
        path = os.path.join(OUT_DIR, fixture["name"] + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fixture, f, indent=2, ensure_ascii=False)
            f.write("\n")
        written += 1
    print(f"wrote {written} fixtures to {os.path.normpath(OUT_DIR)}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed corpora of Wharf's fuzz targets into fuzz/corpus/<target>/.

Seeds are real inputs (the example messages, AWS's SigV4 test suite, the example configs) and
edge cases chosen for each parser. Run from the repository root; PyJWT (with `cryptography`)
signs the JWT seeds with the fixed fuzzing key of crates/fuzz-targets. Files a fuzzer found
are kept beside the seeds under their own names (crash-*, regression-*) and are not touched.

    python3 scripts/fuzz_corpus.py
"""

import base64
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (directory / name).write_bytes(data)


def deep(opening, closing, depth, inner=b"1"):
    return opening * depth + inner + closing * depth


def envelope():
    for example in sorted((ROOT / "examples").glob("*.json")):
        write("envelope", "example-" + example.stem, example.read_bytes())
    seeds = {
        "empty": b"",
        "whitespace": b" \t\r\n",
        "object": b"{}",
        "array": b"[]",
        "null": b"null",
        "number": b"-1.5e308",
        "string": b'"Meta"',
        "meta-null": b'{"Meta":null}',
        "meta-empty": b'{"Meta":{}}',
        "meta-array": b'{"Meta":[]}',
        "meta-string": b'{"Meta":"x"}',
        "logs-numeric-id": b'{"Meta":{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{"ID":12345678901234567890,"AttemptID":1}]}}',
        "logs-empty": b'{"Meta":{"DataModel":"Results","EventType":"New","Logs":[]}}',
        "logs-null-id": b'{"Meta":{"DataModel":"Results","EventType":"New","Logs":[{"ID":null}]}}',
        "logs-object": b'{"Meta":{"DataModel":"Results","Logs":{"ID":"x"}}}',
        "query-by-event": b'{"Meta":{"DataModel":"PatientSearch","EventType":"Query","Logs":[{"ID":"q1"}]}}',
        "query-by-suffix": b'{"Meta":{"DataModel":"Clinical Summary","EventType":"DocumentQuery"}}',
        "query-by-model": b'{"Meta":{"DataModel":"ProviderSearch"}}',
        "duplicate-meta": b'{"Meta":{"DataModel":"A"},"Meta":{"DataModel":"B","Logs":[{"ID":"second"}]}}',
        "fhir-message": b'{"resourceType":"Bundle","id":"b1","type":"message","entry":[{"resource":{"resourceType":"MessageHeader","id":"h1","eventUri":"urn:x"}}]}',
        "fhir-no-header": b'{"resourceType":"Bundle","id":"b2","type":"message","entry":[]}',
        "fhir-coding": b'{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader","eventCoding":{"code":"admit"}}}]}',
        "fhir-entry-garbage": b'{"resourceType":"Bundle","type":"message","entry":[null,1,"x"]}',
        "fhir-not-message": b'{"resourceType":"Bundle","type":"searchset","entry":[]}',
        "fhir-deep-resource": b'{"resourceType":"Bundle","type":"message","entry":[{"resource":'
        + deep(b"[", b"]", 5000)
        + b"}]}",
        "escapes": b'{"Meta":{"DataModel":"\\u0000\\ud800\\udc00\\"","EventType":"\\u00e9"}}',
        "lone-surrogate": b'{"Meta":{"DataModel":"\\ud800"}}',
        "invalid-utf8": b'{"Meta":{"DataModel":"\xff\xfe"}}',
        "invalid-utf8-raw": b"\xc3\x28\xa0\xa1\xe2\x28\xa1",
        "bom": b'\xef\xbb\xbf{"Meta":{}}',
        "truncated": b'{"Meta":{"DataModel":"PatientAdmin","Logs":[{"ID":"x"',
        "trailing-garbage": b'{"Meta":{}} x',
        "huge-number": b'{"Meta":{"Logs":[{"ID":1e999}]}}',
        "nested-100000-arrays": deep(b"[", b"]", 100_000),
        "nested-100000-objects": deep(b'{"a":', b"}", 100_000),
        "nested-in-meta": b'{"Meta":{"DataModel":"A","X":' + deep(b"[", b"]", 10_000) + b"}}",
    }
    for name, data in seeds.items():
        write("envelope", name, data)


def sigv4():
    suite = ROOT / "crates/auth/tests/fixtures/sigv4/aws-test-suite"
    for case in sorted(suite.iterdir()):
        for kind in ("header-signed-request.txt", "request.txt"):
            path = case / kind
            if path.exists():
                prefix = "aws-signed-" if kind.startswith("header") else "aws-"
                write("sigv4", prefix + case.name, path.read_bytes())
    botocore = ROOT / "crates/auth/tests/fixtures/sigv4/botocore"
    for case in sorted(botocore.glob("*.json")):
        fixture = json.loads(case.read_text())
        url = fixture["url"]
        target = "/" + url.split("://", 1)[1].split("/", 1)[1] if "/" in url.split("://", 1)[1] else "/"
        lines = [f'{fixture["method"]} {target} HTTP/1.1']
        lines += [f"{name}:{value}" for name, value in fixture["sent_headers"]]
        body = base64.b64decode(fixture.get("body_base64") or "")
        write("sigv4", "botocore-" + case.stem, "\n".join(lines).encode() + b"\n\n" + body)
    auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    base = "POST /redox HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n"
    seeds = {
        "unsigned": base + "\n{}",
        "zero-signature": base + "Authorization:" + auth + "\n\n{}",
        "no-space-after-algorithm": base + "Authorization:AWS4-HMAC-SHA256Credential=AKIDEXAMPLE/x\n\n",
        "repeated-field": base + "Authorization:" + auth + ", Signature=" + "1" * 64 + "\n\n",
        "unsorted-signed-headers": base + "Authorization:" + auth.replace("host;x-amz-date", "x-amz-date;host") + "\n\n",
        "uppercase-signed-headers": base + "Authorization:" + auth.replace("host;x-amz-date", "Host;x-amz-date") + "\n\n",
        "empty-signed-header": base + "Authorization:" + auth.replace("host;x-amz-date", "host;;x-amz-date") + "\n\n",
        "absent-signed-header": base + "Authorization:" + auth.replace("host;x-amz-date", "host;x-absent;x-amz-date") + "\n\n",
        "short-date": "GET / HTTP/1.1\nHost:h\nX-Amz-Date:2015\nAuthorization:" + auth + "\n\n",
        "unicode-date": "GET / HTTP/1.1\nHost:h\nX-Amz-Date:2015083\u00e9T123600Z\nAuthorization:" + auth + "\n\n",
        "day-mismatch": base.replace("20150830T", "20150831T") + "Authorization:" + auth + "\n\n",
        "two-dates": base + "X-Amz-Date:20150830T123601Z\nAuthorization:" + auth + "\n\n",
        "two-authorizations": base + "Authorization:" + auth + "\nAuthorization:" + auth + "\n\n",
        "wrong-body-hash": base + "X-Amz-Content-Sha256:" + "f" * 64 + "\nAuthorization:" + auth + "\n\nbody",
        "unsigned-payload": base + "X-Amz-Content-Sha256:UNSIGNED-PAYLOAD\nAuthorization:" + auth + "\n\nbody",
        "percent-path": "GET /%zz/%2F/%C3%A9/a%20b/./../ HTTP/1.1\nHost:h\nX-Amz-Date:20150830T123600Z\nAuthorization:" + auth + "\n\n",
        "query-edge-cases": "GET /?a&b=&=c&a=2&%41=1&+=%20&~=- HTTP/1.1\nHost:h\nX-Amz-Date:20150830T123600Z\nAuthorization:" + auth + "\n\n",
        "relative-target": "GET redox HTTP/1.1\nHost:h\nX-Amz-Date:20150830T123600Z\nAuthorization:" + auth + "\n\n",
        "fragment": "GET /a#frag?x HTTP/1.1\nHost:h\nX-Amz-Date:20150830T123600Z\nAuthorization:" + auth + "\n\n",
        "long-credential": base + "Authorization:AWS4-HMAC-SHA256 Credential=" + "A/" * 200 + ", SignedHeaders=host;x-amz-date, Signature=" + "0" * 64 + "\n\n",
        "obs-text-header": b"POST / HTTP/1.1\nHost:h\nX-Amz-Date:20150830T123600Z\nX-Odd:\xe9\xff\nAuthorization:" + auth.replace("host;x-amz-date", "host;x-amz-date;x-odd").encode() + b"\n\n",
        "signable-headers": "POST /redox?b=2&a=1 HTTP/1.1\nContent-Type: application/json\nX-Custom:  a   b  \nX-Custom: second\n\n{\"Meta\":{}}",
    }
    for name, data in seeds.items():
        write("sigv4", name, data)


def jwt():
    try:
        import jwt as pyjwt
    except ImportError:
        sys.exit("PyJWT with cryptography is needed for the JWT seeds: pip install 'pyjwt[crypto]'")
    source = (ROOT / "crates/fuzz-targets/src/lib.rs").read_text()
    pem = source.split('JWT_KEY_PEM: &str = "', 1)[1].split('";', 1)[0]
    now = 1_700_000_000
    issuer, audience = "https://issuer.wharf.test", "https://dest.wharf.test"
    good = {"iss": issuer, "aud": audience, "iat": now, "exp": now + 120, "jti": "j-1"}

    def signed(claims, headers=None, key=pem, algorithm="ES256"):
        header = {"kid": "fuzz-1"} if headers is None else headers
        return pyjwt.encode(claims, key, algorithm=algorithm, headers=header)

    def b64(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    numbers = load_pem_private_key(pem.encode(), None).public_key().public_numbers()
    coordinate = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
    own_jwk = {"kty": "EC", "crv": "P-256", "kid": "fuzz-1", "use": "sig", "x": coordinate(numbers.x), "y": coordinate(numbers.y)}
    token = signed(good)
    head, payload, signature = token.split(".")
    seeds = {
        "valid": token,
        "valid-no-kid": signed(good, headers={}),
        "valid-aud-array": signed(dict(good, aud=["x", audience])),
        "valid-no-jti": signed({k: v for k, v in good.items() if k != "jti"}),
        "valid-long-lifetime": signed(dict(good, exp=now + 86_400)),
        "expired": signed(dict(good, exp=now - 3600)),
        "not-yet-valid": signed(dict(good, nbf=now + 3600)),
        "iat-future": signed(dict(good, iat=now + 3600)),
        "no-exp": signed({k: v for k, v in good.items() if k != "exp"}),
        "wrong-iss": signed(dict(good, iss="https://elsewhere")),
        "wrong-aud": signed(dict(good, aud="https://elsewhere")),
        "huge-exp": signed(dict(good, exp=2**64 - 1)),
        "negative-exp": signed(dict(good, exp=-1)),
        "float-exp": signed(dict(good, exp=1.5e9)),
        "string-exp": signed(dict(good, exp="soon")),
        "empty-jti": signed(dict(good, jti="")),
        "unknown-kid": signed(good, headers={"kid": "other"}),
        "hs256-with-public-key": pyjwt.encode(good, "public-key-bytes-used-as-an-hmac-secret", algorithm="HS256", headers={"kid": "fuzz-1"}),
        "alg-none": b64({"alg": "none", "kid": "fuzz-1"}) + "." + payload + ".",
        "alg-unknown": b64({"alg": "XX999", "kid": "fuzz-1"}) + "." + payload + "." + signature,
        "alg-rs256-on-ec-key": b64({"alg": "RS256", "kid": "fuzz-1"}) + "." + payload + "." + signature,
        "tampered-payload": head + "." + b64(dict(good, iss="https://evil")) + "." + signature,
        "truncated-signature": head + "." + payload + "." + signature[:10],
        "two-parts": head + "." + payload,
        "four-parts": token + ".extra",
        "empty": "",
        "dots": "...",
        "not-base64": "!!!.@@@.###",
        "header-not-json": base64.urlsafe_b64encode(b"not json").rstrip(b"=").decode() + "." + payload + "." + signature,
        "header-array": b64([1, 2]) + "." + payload + "." + signature,
        "deep-header": base64.urlsafe_b64encode(b"[" * 10_000 + b"]" * 10_000).rstrip(b"=").decode() + "." + payload + "." + signature,
        "bearer-prefix": "Bearer " + token,
        "jwks-own": json.dumps({"keys": [own_jwk]}),
        "jwks-empty": '{"keys":[]}',
        "jwks-oct": '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}',
        "jwks-rsa-bad-modulus": '{"keys":[{"kty":"RSA","n":"AA","e":"AQAB","kid":"r"}]}',
        "jwks-ec-wrong-curve": '{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}',
        "jwks-enc-use": '{"keys":[{"kty":"EC","crv":"P-256","use":"enc","x":"AA","y":"AA"}]}',
        "jwks-not-object": '[{"keys":1}]',
        "jwks-okp": '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}',
    }
    for name, data in seeds.items():
        write("jwt", name, data)


def challenge():
    uuid = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
    seeds = {
        "redox": json.dumps({"verification-token": "token-123", "challenge": uuid}),
        "no-token": json.dumps({"challenge": uuid}),
        "token-not-string": json.dumps({"verification-token": 5, "challenge": uuid}),
        "challenge-number": '{"challenge": 42}',
        "challenge-null": '{"challenge": null}',
        "challenge-object": '{"challenge": {"a": 1}}',
        "challenge-empty": '{"challenge": ""}',
        "challenge-html": json.dumps({"challenge": "<script>alert(1)</script>"}),
        "challenge-long": json.dumps({"challenge": "a" * 300}),
        "challenge-spaces": json.dumps({"challenge": "a b"}),
        "challenge-unicode": json.dumps({"challenge": "caf\u00e9"}, ensure_ascii=False),
        "challenge-newline": json.dumps({"challenge": "a\r\nSet-Cookie: x=1"}),
        "with-meta": json.dumps({"Meta": {"DataModel": "PatientAdmin"}, "challenge": uuid}),
        "with-resource-type": json.dumps({"resourceType": "Bundle", "challenge": uuid}),
        "duplicate-challenge": '{"challenge":"first","challenge":"second"}',
        "nested-value": '{"challenge":"x","other":' + "[" * 200 + "]" * 200 + "}",
        "not-json": "challenge=" + uuid,
        "array": '["challenge"]',
        "large-body": json.dumps({"challenge": uuid, "pad": "x" * 5000}),
        "invalid-utf8": b'{"challenge":"\xff\xfe"}',
        "escaped-quote": '{"challenge":"a\\"b"}',
        "lone-surrogate": '{"challenge":"\\ud800"}',
        "engine-form": "token-123\n" + uuid,
        "engine-form-odd": "tok\"en\\\n\u00e9\u0000<x>",
        "engine-form-empty": "\n",
    }
    for name, data in seeds.items():
        write("challenge", name, data)


def config():
    for example in sorted((ROOT / "config").glob("*.toml")):
        write("config", "example-" + example.stem, example.read_bytes())
    destination = '''listen = "127.0.0.1:8443"
data_dir = "data"

[[destinations]]
name = "Acme"
path = "/redox"
environment = "Development"
verification_token = "token-0123456789abcdef"
'''
    engine = '''listen = "127.0.0.1:8080"
data_dir = "data"
organization = "Wharf"
api_keys = ["key-0123456789abcdef0123"]
master_key = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
'''
    seeds = {
        "destination-minimal": destination,
        "engine-minimal": engine,
        "empty": "",
        "not-toml": "this is = not [toml",
        "wrong-type-listen": destination.replace('"127.0.0.1:8443"', "8443"),
        "wrong-type-destinations": 'destinations = "Acme"\n',
        "wrong-type-max-body": destination + "max_body_bytes = \"lots\"\n",
        "negative-max-body": destination + "max_body_bytes = -1\n",
        "huge-int": destination + "max_body_bytes = 99999999999999999999999\n",
        "float-capacity": "writer_queue_capacity = 1.5\n" + destination,
        "huge-duration": destination + 'query_timeout = "18446744073709551615h"\n',
        "duration-units": destination + 'forward_timeout = "1ms"\nforward_max_backoff = "2m"\nquery_timeout = "3h"\n',
        "duration-no-unit": destination + 'query_timeout = "30"\n',
        "serve-limits": "max_connections = 10\nheader_read_timeout = \"5s\"\nidle_timeout = \"10s\"\nbody_read_timeout = \"20s\"\n" + destination,
        "serve-limits-bad": "max_connections = 0\nbody_read_timeout = \"0s\"\n" + destination,
        "unknown-key": destination + "typo = 1\n",
        "duplicate-key": destination + 'name = "Again"\n',
        "tls-half": 'tls_cert = "cert.pem"\n' + destination,
        "production-without-tls": destination.replace("Development", "Production"),
        "bad-path": destination.replace('"/redox"', '"redox?x"'),
        "reserved-path": destination.replace('"/redox"', '"/healthz"'),
        "token-env": destination.replace('verification_token = "token-0123456789abcdef"', 'verification_token_env = "TOKEN"'),
        "auth-sigv4": destination + '[destinations.auth]\nstrategy = "AwsSigv4"\nregion = "us-east-1"\nservice = "execute-api"\ncredentials = [{ access_key = "AKIDEXAMPLE", secret_key_env = "REDOX_AWS_SECRET" }]\n',
        "auth-jwt-bearer-inline": destination + '[destinations.auth]\nstrategy = "JWT_Bearer"\nissuer = "https://engine.example"\naudience = "https://acme.example/redox"\njwks = \'{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}\'\n',
        "auth-two-legged": destination + '[destinations.auth]\nstrategy = "OAuth_2.0_2-legged"\ntoken_path = "/redox/token"\ntoken_lifetime = "5m"\nclients = [{ client_id = "redox", client_secret_env = "REDOX_CLIENT_SECRET" }]\n',
        "auth-unknown": destination + '[destinations.auth]\nstrategy = "Nope"\n',
        "auth-wrong-type": destination + "auth = 5\n",
        "engine-ladder": engine + 'retry_ladder = ["0s", "10s", "bogus"]\n',
        "engine-sources": engine + '[[sources]]\nname = "EHR"\nkey = "source-key-0123456789abcdef-01234"\n',
        "engine-smtp": engine + '[smtp]\nhost = "mail"\nport = 99999\n',
        "engine-wrong-type-keys": engine.replace('["key-0123456789abcdef0123"]', '"one-key"'),
        "deep-inline-table": "a = " + "{b = " * 500 + "1" + "}" * 500 + "\n",
        "deep-array": "a = " + "[" * 5000 + "]" * 5000 + "\n",
        "invalid-utf8": b"listen = \"\xff\xfe\"\n",
        "nul-bytes": b"listen = \"127.0.0.1:\x008443\"\n",
        "crlf": destination.replace("\n", "\r\n"),
    }
    for name, data in seeds.items():
        write("config", name, data)


def main():
    envelope()
    sigv4()
    jwt()
    challenge()
    config()
    for target in sorted(CORPUS.iterdir()):
        print(f"{target.name}: {len(list(target.iterdir()))} seeds")


if __name__ == "__main__":
    main()

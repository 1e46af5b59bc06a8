#!/usr/bin/env python3
"""JWT interop fixtures made with PyJWT, a JWT implementation independent of Wharf's.

`crates/destination/tests/it/interop.rs` checks that a destination accepts tokens that PyJWT
signed: SMART Backend client assertions (RS384 and ES384), a GCP service-account JWT grant
assertion (RS256), JWT Bearer tokens (RS256 and ES384) and a Google-style OIDC ID token (RS256).

Everything lives in crates/destination/tests/fixtures/jwt/:
  test_only_rsa_2048_private.pem     TEST-ONLY private keys (PKCS#8), checked in so tokens can
  test_only_ec_p384_private.pem      be minted at test time; they protect nothing
  jwks.json                          their public halves, as PyJWT writes JWKs
  static_tokens.json                 tokens whose validity does not depend on when the tests run
                                     (exp in 2099): a JWT Bearer token and a Google ID token

Client assertions must expire at most five minutes after they are made, so most tokens cannot be
static: the Rust tests run this script to mint them at test time (and skip that part, loudly,
when python3 or PyJWT is missing, except under CI where it fails).

Run from anywhere:
  python3 scripts/jwt_fixtures.py keys              new key pairs, jwks.json and static tokens
  python3 scripts/jwt_fixtures.py static            static_tokens.json again with the same keys
  python3 scripts/jwt_fixtures.py mint KIND CLAIMS  prints one fresh token on stdout

KIND is one of the keys of KINDS below; CLAIMS is a JSON object merged over the kind's default
time claims (iat = now, exp = now + the kind's lifetime, plus nbf and a random jti where the kind
has them), so a test passes only what identifies the token (iss, sub, aud, ...).

Needs PyJWT with its crypto extra: pip install 'pyjwt[crypto]'.
"""

import json
import os
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

FIXTURES = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "destination", "tests", "fixtures", "jwt",
)
RSA_FILE = "test_only_rsa_2048_private.pem"
EC_FILE = "test_only_ec_p384_private.pem"
RSA_KID = "pyjwt-rsa-2048"
EC_KID = "pyjwt-ec-p384"

# kind -> (key file, kid, algorithm, lifetime in seconds, default claims besides iat/exp)
KINDS = {
    "smart-rs384": (RSA_FILE, RSA_KID, "RS384", 300, ("jti",)),
    "smart-es384": (EC_FILE, EC_KID, "ES384", 300, ("jti",)),
    "gcp-rs256": (RSA_FILE, RSA_KID, "RS256", 3600, ()),
    "jwt-bearer-rs256": (RSA_FILE, RSA_KID, "RS256", 300, ("jti", "nbf")),
    "jwt-bearer-es384": (EC_FILE, EC_KID, "ES384", 300, ("jti", "nbf")),
    "google-id-rs256": (RSA_FILE, RSA_KID, "RS256", 3600, ()),
}

# 2099-01-01T00:00:00Z and 2023-11-14T22:13:20Z: valid whenever the tests run.
STATIC_EXP = 4070908800
STATIC_IAT = 1700000000

STATIC = {
    "jwt_bearer_rs256": (
        RSA_FILE,
        RSA_KID,
        "RS256",
        {
            "iss": "https://pyjwt.example/issuer",
            "sub": "pyjwt-sender",
            "aud": "https://dest.example/jwt",
            "iat": STATIC_IAT,
            "nbf": STATIC_IAT,
            "exp": STATIC_EXP,
            "jti": "pyjwt-static-jwt-bearer-1",
        },
    ),
    "jwt_bearer_es384": (
        EC_FILE,
        EC_KID,
        "ES384",
        {
            "iss": "https://pyjwt.example/issuer",
            "sub": "pyjwt-sender",
            "aud": "https://dest.example/jwt",
            "iat": STATIC_IAT,
            "exp": STATIC_EXP,
            "jti": "pyjwt-static-jwt-bearer-2",
        },
    ),
    "google_id_rs256": (
        RSA_FILE,
        RSA_KID,
        "RS256",
        {
            "iss": "https://accounts.google.com",
            "azp": "1234567890-pyjwt.apps.googleusercontent.com",
            "aud": "https://dest.example/wif",
            "sub": "110169484474386276334",
            "email": "interop@wharf-test.iam.gserviceaccount.com",
            "email_verified": True,
            "iat": STATIC_IAT,
            "exp": STATIC_EXP,
        },
    ),
}


def path(name):
    return os.path.join(FIXTURES, name)


def load_key(name):
    with open(path(name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def write(name, text):
    with open(path(name), "w", encoding="utf-8") as f:
        f.write(text)


def pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def sign(key_file, kid, alg, claims):
    return jwt.encode(claims, load_key(key_file), algorithm=alg, headers={"kid": kid})


def write_jwks():
    keys = []
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(load_key(RSA_FILE).public_key()))
    # No "alg" on the RSA key: it signs RS256 and RS384 tokens here.
    rsa_jwk.update({"kid": RSA_KID, "use": "sig"})
    keys.append(rsa_jwk)
    ec_jwk = json.loads(ECAlgorithm.to_jwk(load_key(EC_FILE).public_key()))
    ec_jwk.update({"kid": EC_KID, "use": "sig", "alg": "ES384"})
    keys.append(ec_jwk)
    write("jwks.json", json.dumps({"keys": keys}, indent=2) + "\n")


def write_static():
    out = {"pyjwt_version": jwt.__version__}
    for name, (key_file, kid, alg, claims) in STATIC.items():
        out[name] = {"alg": alg, "kid": kid, "claims": claims,
                     "token": sign(key_file, kid, alg, claims)}
    write("static_tokens.json", json.dumps(out, indent=2) + "\n")


def new_keys():
    os.makedirs(FIXTURES, exist_ok=True)
    write(RSA_FILE, pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    write(EC_FILE, pem(ec.generate_private_key(ec.SECP384R1())))
    write_jwks()
    write_static()


def mint(kind, claims_json):
    if kind not in KINDS:
        sys.exit(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    key_file, kid, alg, lifetime, extra = KINDS[kind]
    now = int(time.time())
    claims = {"iat": now, "exp": now + lifetime}
    if "nbf" in extra:
        claims["nbf"] = now
    if "jti" in extra:
        claims["jti"] = str(uuid.uuid4())
    claims.update(json.loads(claims_json))
    print(sign(key_file, kid, alg, claims))


def main(argv):
    if len(argv) >= 2 and argv[1] == "keys":
        new_keys()
    elif len(argv) >= 2 and argv[1] == "static":
        write_static()
    elif len(argv) == 4 and argv[1] == "mint":
        mint(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

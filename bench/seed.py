#!/usr/bin/env python3
"""Writes the bench seed: users, API tokens and pending device sessions whose
secrets the harness knows, as CSV for psql \\copy, plus the plaintext lists
the wrk scripts rotate over.

    seed.py OUT_DIR USERS TOKENS SESSIONS CODE_HMAC_KEY_B64 [DPOP_JKTS_FILE]

With DPOP_JKTS_FILE (one RFC 7638 thumbprint a line, from dpop-proofs keys),
also one DPoP-bound token per thumbprint: dpop_tokens.csv (api_tokens rows
with dpop_jkt) and dpop_tokens.txt, in the order of the thumbprints.

Token format (src/domain/token.rs): "esh_" + 43 base62 + 6-char base62 CRC32
of prefix+body; the database keeps sha256(token) and a hint. Device codes
(src/domain/codes.rs): 43 chars of base64url; the database keeps
HMAC-SHA256(CODE_HMAC_KEY, b"device-code" + b"\\0" + code) (src/crypto.rs).
"""
import base64
import hashlib
import hmac
import os
import secrets
import sys
import uuid
import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX = "esh_"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
SCOPES = "{envs:read,envs:write,tokens:read,tokens:write}"


def checksum(head: str) -> str:
    n = zlib.crc32(head.encode())
    out = []
    for _ in range(6):
        out.append(BASE62[n % 62])
        n //= 62
    return "".join(reversed(out))


def new_token() -> str:
    head = PREFIX + "".join(secrets.choice(BASE62) for _ in range(43))
    return head + checksum(head)


def keyed(key: bytes, domain: str, msg: str) -> bytes:
    return hmac.new(key, domain.encode() + b"\0" + msg.encode(), hashlib.sha256).digest()


def bytea(b: bytes) -> str:
    return "\\x" + b.hex()


def main() -> None:
    out, n_users, n_tokens, n_sessions, key_b64 = sys.argv[1:6]
    jkts_file = sys.argv[6] if len(sys.argv) > 6 else None
    n_users, n_tokens, n_sessions = int(n_users), int(n_tokens), int(n_sessions)
    key = base64.b64decode(key_b64)
    assert len(key) == 32, "CODE_HMAC_KEY must be 32 bytes"
    os.makedirs(out, exist_ok=True)

    user_ids = [uuid.uuid4() for _ in range(n_users)]
    with open(f"{out}/users.csv", "w") as f:
        for i, uid in enumerate(user_ids):
            f.write(f"{uid},bench-user-{i}@bench.invalid\n")

    with open(f"{out}/tokens.csv", "w") as csv, open(f"{out}/tokens.txt", "w") as plain:
        for i in range(n_tokens):
            tok = new_token()
            digest = hashlib.sha256(tok.encode()).digest()
            hint = f"{PREFIX}…{tok[-4:]}"
            csv.write(f"{uuid.uuid4()},{user_ids[i % n_users]},bench token {i},"
                      f"\"{SCOPES}\",{bytea(digest)},{hint}\n")
            plain.write(tok + "\n")

    if jkts_file:
        with open(jkts_file) as f:
            jkts = [line.strip() for line in f if line.strip()]
        with open(f"{out}/dpop_tokens.csv", "w") as csv, open(f"{out}/dpop_tokens.txt", "w") as plain:
            for i, jkt in enumerate(jkts):
                tok = new_token()
                digest = hashlib.sha256(tok.encode()).digest()
                csv.write(f"{uuid.uuid4()},{user_ids[i % n_users]},bench dpop token {i},"
                          f"\"{SCOPES}\",{bytea(digest)},{PREFIX}…{tok[-4:]},{jkt}\n")
                plain.write(tok + "\n")

    seen = set()
    with open(f"{out}/sessions.csv", "w") as csv, open(f"{out}/device_codes.txt", "w") as plain:
        for _ in range(n_sessions):
            code = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
            while True:
                user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
                if user_code not in seen:
                    seen.add(user_code)
                    break
            csv.write(f"{uuid.uuid4()},{bytea(keyed(key, 'device-code', code))},"
                      f"{bytea(keyed(key, 'user-code', user_code))},bench session,\"{SCOPES}\"\n")
            plain.write(code + "\n")


if __name__ == "__main__":
    main()

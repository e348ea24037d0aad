"""RTSP authentication (RFC 2617 as RTSP uses it): Basic, and Digest with MD5, with or
without qop=auth. Shared by Dozor's RTSP client and the simulator's test client."""

from __future__ import annotations

import base64
import hashlib
import os
import re

_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def challenges(header: str) -> list[str]:
    """The challenges of a WWW-Authenticate value (several headers joined with newlines)."""
    return [v for v in header.split("\n") if v]


class Authenticator:
    """HTTP Basic or Digest (RFC 2617, MD5, with or without qop=auth) for RTSP requests."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.scheme: str | None = None
        self.params: dict[str, str] = {}
        self.nonce_count = 0

    def challenge(self, headers: list[str]) -> bool:
        """Take the strongest challenge offered; False if none can be answered."""
        digest = [h for h in headers if h.lower().startswith("digest")]
        basic = [h for h in headers if h.lower().startswith("basic")]
        if digest:
            self.scheme = "digest"
            text = digest[0][len("digest") :]
            self.params = {m[0].lower(): m[1] or m[2] for m in _AUTH_PARAM.findall(text)}
            algorithm = self.params.get("algorithm", "MD5").upper()
            if algorithm != "MD5":
                return False
            self.nonce_count = 0
            return True
        if basic:
            self.scheme = "basic"
            return True
        return False

    def header(self, method: str, uri: str) -> str | None:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
            return f"Basic {token}"
        if self.scheme != "digest":
            return None
        p = self.params
        realm, nonce = p.get("realm", ""), p.get("nonce", "")

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()  # RFC 2617 digest is MD5

        ha1 = md5(f"{self.user}:{realm}:{self.password}")
        ha2 = md5(f"{method}:{uri}")
        fields = [
            f'username="{self.user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
        ]  # fmt: skip
        qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        if "auth" in qops:
            self.nonce_count += 1
            nc = f"{self.nonce_count:08x}"
            cnonce = os.urandom(8).hex()
            response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in p:
            fields.append(f'opaque="{p["opaque"]}"')
        return "Digest " + ", ".join(fields)

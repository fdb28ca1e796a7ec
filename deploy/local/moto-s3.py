"""Runs moto_server with S3's own canonicalisation of the request URI for SigV4.

moto checks a signature against werkzeug's *decoded* URL and botocore's canonicaliser,
which does not re-encode: a `/` in a query value (list under a prefix) or a `+`, `&`
or `=` in a key can then never verify, even for boto3 itself. Real S3 decodes the path
and every query name and value, re-encodes them strictly (RFC 3986 unreserved only) and
sorts the query. This launcher makes moto do the same from the raw request line, so a
signer is held to what S3 checks: no more and no less. Wrong secrets still get 403.

Usage: python3 moto-s3.py HOST PORT
"""
import sys
from urllib.parse import quote, unquote, urlsplit

from moto.core import authorization
from moto.core.responses import BaseResponse
from moto.server import main


def s3_canonical(raw_uri: str) -> str:
    parts = urlsplit(raw_uri)
    path = quote(unquote(parts.path), safe="/~")
    pairs = []
    for item in parts.query.split("&") if parts.query else []:
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    query = "&".join(f"{n}={v}" for n, v in sorted(pairs))
    return "http://s3.local" + path + ("?" + query if query else "")


original_setup = BaseResponse.setup_class
original_check = authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action


def setup_class(self, request, *args, **kwargs):
    # Arguments passed on as given: moto 5.2.6 made use_raw_body default to the class's own
    # (S3 keeps bodies raw), and passing False decoded every binary PUT as UTF-8 (HTTP 500).
    original_setup(self, request, *args, **kwargs)
    environ = getattr(request, "environ", None) or {}
    self._dbq_raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")


def authenticate(self, iam_request_cls, resource="*"):
    raw = getattr(self, "_dbq_raw_uri", None)
    if not raw:
        return original_check(self, iam_request_cls, resource)
    saved = self.uri
    self.uri = s3_canonical(raw)
    try:
        return original_check(self, iam_request_cls, resource)
    finally:
        self.uri = saved


BaseResponse.setup_class = setup_class
authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate

if __name__ == "__main__":
    main(["-H", sys.argv[1], "-p", sys.argv[2]])

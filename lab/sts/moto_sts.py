"""The lab's stand-in for INFN Cloud object storage: moto's server (S3 and STS on one endpoint, like Ceph's
RADOS Gateway) with two lab-only additions, so that tests can observe the credential refresh itself
(moto validates neither the web-identity token nor the keys):

- AssumeRoleWithWebIdentity without DurationSeconds gets LAB_STS_DURATION seconds (default 900, the
  INFN lifetime; the tests use a short one), so the temporary keys expire during a test;
- every STS exchange (time, token digest, issued key id and expiry) and every other request (time,
  method, path, the access key id that signed it) is recorded; GET /_lab/events returns them as JSON.

Run inside the lab's S3 image: python3 moto_sts.py [PORT].
"""
import hashlib
import io
import json
import re
import sys
import threading
import time
import urllib.parse

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

DURATION = int(__import__("os").environ.get("LAB_STS_DURATION", "900"))
EVENTS = []
LOCK = threading.Lock()
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def record(event):
    event["time"] = time.time()
    with LOCK:
        EVENTS.append(event)


def middleware(app):
    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") == "/_lab/events":
            with LOCK:
                body = json.dumps(EVENTS).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        akid = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        sts = None
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") in ("/", ""):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
            if form.get("Action") == ["AssumeRoleWithWebIdentity"]:
                if "DurationSeconds" not in form:
                    raw += ("&DurationSeconds=%d" % DURATION).encode()
                token = (form.get("WebIdentityToken") or [""])[0]
                sts = {"kind": "sts", "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                       "token": token if token.count(".") == 2 else "", "role_arn": (form.get("RoleArn") or [""])[0]}
            environ["wsgi.input"] = io.BytesIO(raw)
            environ["CONTENT_LENGTH"] = str(len(raw))
        if sts is None:
            record({"kind": "request", "method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO"),
                    "akid": akid.group(1) if akid else None})
            return app(environ, start_response)
        chunks = b"".join(app(environ, start_response))
        text = chunks.decode("utf-8", "replace")
        key = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", text)
        exp = re.search(r"<Expiration>([^<]+)</Expiration>", text)
        sts.update(akid=key.group(1) if key else None, expiration=exp.group(1) if exp else None)
        # the web-identity token is a JWT from the lab's OIDC provider: keep only its claims
        if sts["token"]:
            import base64
            part = sts["token"].split(".")[1]
            try:
                sts["claims"] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            except ValueError:
                sts["claims"] = None
        sts.pop("token")
        record(sts)
        return [chunks]
    return wrapped


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    run_simple("0.0.0.0", port, middleware(DomainDispatcherApplication(create_backend_app)), threaded=True)

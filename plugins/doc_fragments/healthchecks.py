# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of the Healthchecks Management API, shared by the healthchecks_* modules.
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the Healthchecks instance, for example V(https://hc.cloud.infn.it), V(https://healthchecks.io)
        or a self-hosted URL (a path prefix is kept).
      - The module appends C(/api/v3/); a URL that already ends in C(/api/v1), C(/api/v2) or C(/api/v3) is accepted.
      - Redirects are never followed, so give the final URL (scheme included).
      - If not set, the environment variable E(HEALTHCHECKS_API_URL) is used.
    type: str
    required: true
  api_key:
    description:
      - API key of the Healthchecks project (32 characters), sent in the C(X-Api-Key) header and never logged.
        A key of another length is refused before any request (the server would answer HTTP 401).
      - Creating, updating, pausing and deleting checks, and resolving channel names, need the read-write key;
        reading checks also works with the read-only key.
      - If not set, the environment variable E(HEALTHCHECKS_API_KEY) is used.
    type: str
    required: true
  validate_certs:
    description:
      - Verify the server's TLS certificate. Only disable it for a throw-away test instance.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) to trust for the server's certificate, for a private CA. A file that
        cannot be read fails before any API call.
    type: path
  api_timeout:
    description:
      - Timeout in seconds of each HTTP request.
    type: int
    default: 30
  api_retries:
    description:
      - How many times a request is retried after HTTP 429, a 5xx answer, a timeout or a connection error
        (0 to 10), with exponential backoff from 1 second that honours C(Retry-After) (at most 60 seconds a wait).
      - Other errors (400, 401, 403, 404, redirects, TLS verification) fail at once.
    type: int
    default: 3
notes:
  - All API calls run where the module runs; delegate to the controller so the key never reaches the managed hosts.
"""

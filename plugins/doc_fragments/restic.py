# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  repository:
    description:
      - The restic repository, for example V(rest:http://127.0.0.1:8089/) or V(s3:https://s3.example.org/bucket/host).
      - Passed to restic as E(RESTIC_REPOSITORY), never on the command line.
      - When omitted, restic takes it from its own environment (inside the backup container that is the
        container's E(RESTIC_REPOSITORY)).
      - Keep credentials out of the URL; give them in O(environment).
      - An empty value fails before restic runs.
    type: str
  password:
    description:
      - The repository password, passed as E(RESTIC_PASSWORD).
      - When neither O(password) nor O(password_file) is set, restic takes the password from its own
        environment (inside the backup container that is the container's E(RESTIC_PASSWORD)).
      - An empty password fails before restic runs (restic refuses it too).
    type: str
  password_file:
    description:
      - A file holding the repository password, passed as E(RESTIC_PASSWORD_FILE).
      - The path is read by restic, so with O(container) it is a path inside the container.
      - An absolute path; without O(container), a file that cannot be read fails before restic runs.
    type: path
  container:
    description:
      - Run restic inside this running container through C(docker exec) (the docker CLI must be on the target),
        given by name or id.
      - Secrets are handed over as C(-e NAME) flags without values; the values stay in the environment of
        the docker client.
      - When omitted, restic runs directly on the target.
    type: str
  container_user:
    description:
      - The user C(docker exec) runs restic as (C(-u)), a name or uid with an optional V(:group) or V(:gid);
        default is the container's own user.
    type: str
  environment:
    description:
      - Extra environment variables for restic, for example E(RESTIC_REST_USERNAME), E(RESTIC_REST_PASSWORD),
        E(AWS_ACCESS_KEY_ID), E(AWS_SECRET_ACCESS_KEY), E(RESTIC_CACHE_DIR).
      - All values are treated as secrets (hidden from logs and messages).
      - O(repository), O(password) and O(password_file) take precedence over the same names given here.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds (at least 1) after which a restic call is terminated (killed 5 seconds later) and the task fails
        with "backend unreachable or timed out".
      - restic itself retries an unreachable backend for up to 15 minutes; this bound keeps one dead
        endpoint from stalling a rollout.
    type: int
    default: 120
  restic_binary:
    description:
      - The restic executable (name on E(PATH) or path; inside the container with O(container)).
    type: str
    default: restic
notes:
  - Exit codes of restic are mapped to their meaning (10 repository missing, 11 locked, 12 wrong password);
    requires restic 0.17.1 or newer.
  - With O(container) the container must provide coreutils C(timeout), as the infn_cloud backup image does.
requirements:
  - restic >= 0.17.1 on the target or in the container
  - the docker CLI on the target when O(container) is set
'''

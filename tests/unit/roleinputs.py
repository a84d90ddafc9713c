"""The cloud_backup role's inputs as the role sees them, for unit tests: its defaults (templated for one host),
argument_specs, the validator and the host model, with nothing copied from the role."""

from __future__ import annotations

import copy
import os

import jinja2
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _model, _validate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "cloud_backup")
SPECS = yaml.safe_load(open(os.path.join(ROLE, "meta", "argument_specs.yml")))["argument_specs"]
MAIN = SPECS["main"]["options"]
DEFAULTS = yaml.safe_load(open(os.path.join(ROLE, "defaults", "main.yml")))
# What an inventory must give (no default): a believable host.
REQUIRED = {
    "cloud_backup_restic_password": "a long real secret",
    "cloud_backup_rest_password": "another-real-secret",
    "cloud_backup_destination": {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "b",
                                 "access_key_id": "AKIAREAL", "secret_access_key": "s3-secret-real"},
}
EXAMPLE = {
    "cloud_backup_sources": [{"name": "www", "path": "/srv/www", "tags": ["web"], "exclude": ["*.tmp"]}],
    "cloud_backup_healthchecks_api_url": "https://hc.example.org",
    "cloud_backup_healthchecks_api_key": "hcw_0123456789abcdef0123456789abcd",
    "cloud_backup_healthchecks_tags": ["prod"],
    "cloud_backup_healthchecks_channels": ["ops-email"],
}


def render(value, host):
    """A default as ansible-core templates it for HOST (random(seed=...) is stable per host: any fixed value)."""
    if isinstance(value, str) and "{{" in value:
        env = jinja2.Environment()
        env.filters["random"] = lambda end, seed=None: sum(map(ord, str(seed))) % end
        return env.from_string(value).render(inventory_hostname=host)
    return value


def good(host="vm1", **changes):
    """Every main variable with its default (templated for HOST), the required ones, an example host, CHANGES."""
    v = {k: copy.deepcopy(render(val, host)) for k, val in DEFAULTS.items() if k in MAIN}
    v.update(copy.deepcopy(REQUIRED))
    v.update(copy.deepcopy(EXAMPLE))
    v.update(changes)
    return v


def validated(params):
    """(errors of argument_specs, the parameters as ansible-core passes them on: types converted, defaults set)."""
    result = ArgumentSpecValidator(MAIN).validate(params)
    return [str(e) for e in result.errors], result.validated_parameters


def problems(params, host_timezone="UTC"):
    """Every refusal the role gives before changing anything: argument_specs, then the validator."""
    errors, params = validated(params)
    return errors or (_validate.problems(params) + _validate.host_problems(params, host_timezone))


def model(params, host="vm1", groups=(), host_timezone="UTC", now=0, digest="context"):
    errors, params = validated(params)
    assert not errors and not _validate.problems(params), (errors, _validate.problems(params))
    return _model.host_model(params, host, list(groups), host_timezone, now, digest)

"""The bad-input matrix of the cloud_backup role: every public variable with at least one bad value,
refused by the role's own checks (argument_specs + cloud_backup_problems, which run before any host is
changed) with a message naming the variable. `python tests/unit/test_bad_input_matrix.py` rewrites
docs/bad-input.md from this table; a test fails when the two differ."""

import copy
import os
import sys

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

sys.path.insert(0, os.path.dirname(__file__))
from test_cloud_backup_filters import GOOD  # noqa: E402

from ansible_collections.infn_cloud.backup.plugins.filter.cloud_backup import cloud_backup_problems  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = yaml.safe_load(open(os.path.join(REPO, "roles/cloud_backup/meta/argument_specs.yml")))["argument_specs"]["main"]["options"]
DOC = os.path.join(REPO, "docs", "bad-input.md")
S3 = GOOD["cloud_backup_destination"]

# variable: (bad value, what the message says)
MATRIX = {
    "cloud_backup_aai_user": ("j doe", "cloud_backup_aai_user must be a single word"),
    "cloud_backup_backup_schedule": ("0 2 * * *", "cloud_backup_backup_schedule: '0 2 * * *' has 5 fields"),
    "cloud_backup_check_enabled": ("sometimes", "cloud_backup_check_enabled"),
    "cloud_backup_check_read_data_subset": ("lots", "cloud_backup_check_read_data_subset 'lots' must be a percentage"),
    "cloud_backup_check_schedule": ("0 0 5 * * 8", "cloud_backup_check_schedule: day of week: 8 is out of range"),
    "cloud_backup_copy_schedule": ("0 2 * * *", "cloud_backup_copy_schedule: '0 2 * * *' has 5 fields"),
    "cloud_backup_container_name": ("Cloud Backup", "cloud_backup_container_name must match"),
    "cloud_backup_cron_file": ("/etc/cron.d/cloud.backup", "cloud_backup_cron_file must be a file directly in /etc/cron.d"),
    "cloud_backup_destination": (dict(S3, type="ftp"), "value of type must be one of: s3, local, rclone, sftp, rest, infn, got: ftp found in cloud_backup_destination"),
    "cloud_backup_docker_install": ("perhaps", "cloud_backup_docker_install"),
    "cloud_backup_docker_packages": ([], "cloud_backup_docker_packages must list Debian package names"),
    "cloud_backup_fleet_gate": ("maybe", "cloud_backup_fleet_gate"),
    "cloud_backup_forget_prune": ("often", "cloud_backup_forget_prune"),
    "cloud_backup_forget_schedule": ("0 61 3 * * *", "cloud_backup_forget_schedule: minutes: 61 is out of range"),
    "cloud_backup_healthchecks_api_key": ("", "cloud_backup_healthchecks_api_key is empty or a placeholder"),
    "cloud_backup_healthchecks_api_url": ("hc.cloud.infn.it", "cloud_backup_healthchecks_api_url must be an http(s) URL"),
    "cloud_backup_healthchecks_ca_path": ("/nonexistent/ca.pem", "cloud_backup_healthchecks_ca_path '/nonexistent/ca.pem' is not a file"),
    "cloud_backup_healthchecks_channels": (["a,b"], "cloud_backup_healthchecks_channels: 'a,b' must be one channel"),
    "cloud_backup_healthchecks_grace": (30, "cloud_backup_healthchecks_grace must be 60..31536000"),
    "cloud_backup_healthchecks_prefix": ("", "cloud_backup_healthchecks_prefix must be 1 to 60 characters"),
    "cloud_backup_healthchecks_removed": ("forgotten", "cloud_backup_healthchecks_removed"),
    "cloud_backup_healthchecks_tags": (["two words"], "cloud_backup_healthchecks_tags: 'two words' must match"),
    "cloud_backup_healthchecks_tz": ("Mars/Olympus", "cloud_backup_healthchecks_tz 'Mars/Olympus' is not an IANA time zone"),
    "cloud_backup_healthchecks_validate_certs": ("dunno", "cloud_backup_healthchecks_validate_certs"),
    "cloud_backup_image": ("Registry/Image", "cloud_backup_image 'Registry/Image' is not an image reference"),
    "cloud_backup_image_base": ("debian trixie", "cloud_backup_image_base 'debian trixie' is not an image reference"),
    "cloud_backup_image_build": ("yes please", "cloud_backup_image_build"),
    "cloud_backup_image_build_network": ("my net", "cloud_backup_image_build_network must be a network name"),
    "cloud_backup_image_name": ("Infn/Backup", "cloud_backup_image_name 'Infn/Backup' is not an image reference"),
    "cloud_backup_job_user": ("the user", "cloud_backup_job_user must be a user name or uid"),
    "cloud_backup_log_cleanup_schedule": ("@sometimes", "cloud_backup_log_cleanup_schedule: unknown descriptor"),
    "cloud_backup_log_retention_days": (0, "cloud_backup_log_retention_days must be at least 1"),
    "cloud_backup_ofelia_image": ("mcuadros/ofelia:latest", "cloud_backup_ofelia_image must pin a version"),
    "cloud_backup_oidc_account": ("my account", "cloud_backup_oidc_account 'my account' must match"),
    "cloud_backup_oidc_issuer": ("http://iam.example.org/", "cloud_backup_oidc_issuer must be an https URL"),
    "cloud_backup_oidc_password": ("changeme", "cloud_backup_oidc_password is a placeholder"),
    "cloud_backup_project_dir": ("opt/cloud-backup", "cloud_backup_project_dir must be an absolute path"),
    "cloud_backup_project_name": ("Cloud Backup", "cloud_backup_project_name must match"),
    "cloud_backup_repository_timeout": (2, "cloud_backup_repository_timeout must be at least 5"),
    "cloud_backup_rest_password": ("changeme", "cloud_backup_rest_password is empty or a placeholder"),
    "cloud_backup_rest_port": (70000, "cloud_backup_rest_port must be a port number"),
    "cloud_backup_rest_username": ("a:b", "cloud_backup_rest_username must be non-empty, without ':'"),
    "cloud_backup_restic_compression": ("fast", "cloud_backup_restic_compression"),
    "cloud_backup_refresh_token_check_schedule": ("0 0 25 * * *", "cloud_backup_refresh_token_check_schedule: hours: 25 is out of range"),
    "cloud_backup_refresh_token_lifetime_days": (0, "cloud_backup_refresh_token_lifetime_days must be at least 1"),
    "cloud_backup_refresh_token_min_days": (0, "cloud_backup_refresh_token_min_days must be at least 1"),
    "cloud_backup_restic_host": ("my host", "cloud_backup_restic_host must be a single word"),
    "cloud_backup_restic_pack_size": (200, "cloud_backup_restic_pack_size must be 0 (restic's default) or 4..128"),
    "cloud_backup_restic_password": ("", "cloud_backup_restic_password is empty or a placeholder"),
    "cloud_backup_restic_read_concurrency": (100, "cloud_backup_restic_read_concurrency must be 0 (restic's default) or 1..64"),
    "cloud_backup_retention": ({"keep_forever": 1}, "cloud_backup_retention: unknown option(s) keep_forever"),
    "cloud_backup_scheduler": ("systemd", "cloud_backup_scheduler"),
    "cloud_backup_secondary_destinations": ([{"name": "Off Site", "type": "local", "path": "/srv/copy"}],
                                            "cloud_backup_secondary_destinations[0].name 'Off Site' must match"),
    "cloud_backup_sources": ([{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}],
                             "cloud_backup_sources[1].name 'a' is used by two sources"),
}


def refusals(params):
    """Every message the role gives before changing anything: argument_specs, then its own checks."""
    result = ArgumentSpecValidator(SPEC).validate(params)
    messages = [str(e) for e in result.errors]
    if not messages:
        messages = cloud_backup_problems(result.validated_parameters)
    return messages


def test_every_public_variable_is_in_the_matrix():
    assert sorted(MATRIX) == sorted(SPEC)


def test_good_input_passes():
    assert refusals(copy.deepcopy(GOOD)) == []


@pytest.mark.parametrize("variable", sorted(MATRIX))
def test_bad_value_is_refused_naming_the_variable(variable):
    bad, message = MATRIX[variable]
    params = copy.deepcopy(GOOD)
    if variable == "cloud_backup_docker_packages":
        params["cloud_backup_docker_install"] = True
    if variable == "cloud_backup_image":
        params["cloud_backup_image_build"] = False
    params[variable] = bad
    messages = refusals(params)
    assert any(message in m for m in messages), messages
    assert any(variable in m for m in messages), messages


def render():
    lines = ["# Bad input: what the cloud_backup role refuses", "",
             "Generated by `python tests/unit/test_bad_input_matrix.py` from the table the tests check. Each value is",
             "refused on the controller before any host is changed (argument_specs, then the role's own checks),",
             "and with `cloud_backup_fleet_gate` (default) the whole rollout stops. Host checks (Docker or Compose v2",
             "missing, a source directory missing, a repository that refuses the password) are in tests/lab.", "",
             "| variable | bad value | message (excerpt) |", "|---|---|---|"]
    for variable in sorted(MATRIX):
        bad, message = MATRIX[variable]
        lines.append("| `%s` | `%s` | %s |" % (variable, yaml.safe_dump(bad, default_flow_style=True, width=1000).strip()
                                               .replace("|", "\\|").replace("\n...", ""), message.replace("|", "\\|")))
    return "\n".join(lines) + "\n"


def test_docs_table_is_current():
    assert os.path.exists(DOC) and open(DOC).read() == render(), "run: python tests/unit/test_bad_input_matrix.py"


if __name__ == "__main__":
    with open(DOC, "w") as handle:
        handle.write(render())

"""infn destinations through a client-credentials client (issue 14): the host model and the refusals of bad input."""

import pytest

from roleinputs import good, model, problems

CC = {"type": "infn", "endpoint": "https://s3.cloud.infn.it", "bucket": "experiment-x", "role_name": "S3AccessRole",
      "auth": "client_credentials", "client_id": "experiment-x-backup", "client_secret": "a-real-client-secret-123"}


def host(name="vm1", **dest):
    return good(name, cloud_backup_destination=dict(CC, **dest))


def test_model_of_a_service_account_host():
    m = model(host(), host="vm1", groups=["experiment_x"])
    env = m["env"]
    assert env["INFN_TOKEN_SOURCE"] == "client"
    assert env["OIDC_CC_CLIENT_ID"] == "experiment-x-backup"
    assert env["OIDC_CC_ISSUER"] == "https://iam.cloud.infn.it/"  # cloud_backup_oidc_issuer
    # the secret is one of the stack's secret files (0600), named to the image by OIDC_CC_SECRET_FILE
    assert env["OIDC_CC_SECRET_FILE"] == "/run/secrets/OIDC_CC_CLIENT_SECRET"
    assert {"name": "OIDC_CC_CLIENT_SECRET", "value": "a-real-client-secret-123"}.items() <= \
        [s for s in m["secrets"] if s["name"] == "OIDC_CC_CLIENT_SECRET"][0].items()
    assert "OIDC_CC_TOKEN_ENDPOINT" not in env and "OIDC_CC_SCOPE" not in env and "OIDC_CC_CA_FILE" not in env
    # the secret is a file, never in .env; no oidc-agent account
    assert not any("a-real-client-secret-123" in str(value) for value in env.values())
    assert "OIDC_ACCOUNT" not in env
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/home/user/.local/state/cloud-backup/web-identity-token"
    assert env["BACKUP_BUCKET_PATH"] == "experiment-x/vm1"
    cc = m["client_credentials"]
    assert cc["enabled"] and cc["where"] == "cloud_backup_destination" and "secret" not in cc
    assert cc["secret_file"] == env["OIDC_CC_SECRET_FILE"]
    assert cc["discovery_url"] == "https://iam.cloud.infn.it/.well-known/openid-configuration"
    assert m["auth"] == "client_credentials"
    token = [j for j in m["jobs"] if j["name"] == "token"]
    assert len(token) == 1 and token[0]["argv"] == ["check-client-token"] and token[0]["check"] == "vm1-token"
    assert token[0]["ping_var"] == "HC_PING_TOKEN" and token[0]["schedule"].endswith(" * * * *")
    assert "check-refresh-token" not in [j["name"] for j in m["jobs"]]
    assert "vm1-token" in [c["name"] for c in m["checks"]]


def test_one_client_for_a_group_each_host_its_own_path():
    a, b = model(host("vm1"), host="vm1"), model(host("vm2"), host="vm2")
    assert a["env"]["OIDC_CC_CLIENT_ID"] == b["env"]["OIDC_CC_CLIENT_ID"]
    assert a["env"]["BACKUP_BUCKET_PATH"] == "experiment-x/vm1" and b["env"]["BACKUP_BUCKET_PATH"] == "experiment-x/vm2"
    # forget is scoped to the host (RESTIC_HOST) as for every destination
    assert a["env"]["RESTIC_HOST"] != b["env"]["RESTIC_HOST"] or a["env"]["RESTIC_HOST"] == "vm1"


def test_overrides_issuer_endpoint_scope_ca():
    m = model(host(issuer="https://iam.example.org/", token_endpoint="https://iam.example.org/token",
                   scope="storage.read:/ storage.modify:/", audience="object", ca_file="/etc/ssl/iam-ca.pem"))
    env = m["env"]
    assert env["OIDC_CC_ISSUER"] == "https://iam.example.org/"
    assert env["OIDC_CC_TOKEN_ENDPOINT"] == "https://iam.example.org/token"
    assert env["OIDC_CC_SCOPE"] == "storage.read:/ storage.modify:/" and env["OIDC_AUDIENCE"] == "object"
    assert env["OIDC_CC_CA_FILE"] == "/etc/cloud-backup/client-ca.pem"
    assert "/etc/ssl/iam-ca.pem:/etc/cloud-backup/client-ca.pem:ro" in m["volumes"]
    assert m["client_credentials"]["token_endpoint"] == "https://iam.example.org/token"


def test_a_secondary_infn_with_a_client():
    v = good(cloud_backup_secondary_destinations=[dict(CC, name="exp")])
    m = model(v)
    assert m["client_credentials"]["where"] == "cloud_backup_secondary_destinations[0]"
    assert m["env"]["INFN_TOKEN_SOURCE"] == "client" and "token" in [j["name"] for j in m["jobs"]]
    assert m["auth"] == "keys"


def test_personal_accounts_and_other_destinations_unchanged():
    personal = dict(CC)
    for key in ("auth", "client_id", "client_secret"):
        personal.pop(key)
    m = model(good(cloud_backup_destination=personal, cloud_backup_oidc_account="me",
                   cloud_backup_oidc_password="a-real-oidc-password"))
    assert m["env"]["INFN_TOKEN_SOURCE"] == "oidc" and not any(k.startswith("OIDC_CC_") for k in m["env"])
    assert not m["client_credentials"]["enabled"] and m["auth"] == "oidc_agent"
    assert "token" not in [j["name"] for j in m["jobs"]] and "check-refresh-token" in [j["name"] for j in m["jobs"]]
    assert not any("client-ca" in v for v in m["volumes"]) and "OIDC_CC_CLIENT_SECRET" not in [s["name"] for s in m["secrets"]]
    s3 = model(good())
    assert not s3["client_credentials"]["enabled"] and "token" not in [j["name"] for j in s3["jobs"]]


@pytest.mark.parametrize("change, message", [
    ({"client_id": None}, "client_id"),
    ({"client_secret": None}, "client_secret"),
    ({"client_id": " "}, "cloud_backup_destination.client_id is required with auth client_credentials"),
    ({"client_secret": "changeme"}, "cloud_backup_destination.client_secret is empty or a placeholder"),
    ({"client_secret": "<the client secret>"}, "cloud_backup_destination.client_secret is empty or a placeholder"),
    ({"client_secret": "two\nlines"}, "cloud_backup_destination.client_secret cannot hold a line break"),
    ({"token_endpoint": "http://iam.example.org/token"}, "cloud_backup_destination.token_endpoint must be an https URL"),
    ({"issuer": "iam.example.org"}, "cloud_backup_destination.issuer must be an https URL"),
    ({"scope": "a  b"}, "cloud_backup_destination.scope must be scope names"),
    ({"ca_file": "ca.pem"}, "cloud_backup_destination.ca_file must be an absolute path on the host"),
    ({"token_file": "/tmp/t"}, "cloud_backup_destination.token_file cannot be set with auth client_credentials"),
    ({"auth": "password"}, "auth"),
])
def test_bad_client_input_is_refused_naming_the_field(change, message):
    dest = dict(CC, **change)
    dest = {k: v for k, v in dest.items() if v is not None}
    found = problems(good(cloud_backup_destination=dest))
    assert any(message in p for p in found), found


def test_a_client_and_an_oidc_account_for_the_same_destination_are_refused():
    found = problems(dict(host(), cloud_backup_oidc_account="me", cloud_backup_oidc_password="a-real-oidc-password"))
    assert any("auth client_credentials and cloud_backup_oidc_account" in p and "cloud_backup_destination" in p
               for p in found), found


def test_client_keys_without_client_credentials_are_refused():
    dest = {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "b", "access_key_id": "AKIAREAL",
            "secret_access_key": "s3-secret-real", "client_id": "x"}
    found = problems(good(cloud_backup_destination=dest))
    assert any("cloud_backup_destination.client_id is only used with auth: client_credentials" in p for p in found), found
    found = problems(good(cloud_backup_destination=dict(dest, auth="client_credentials", client_secret="a-real-one-123")))
    assert any("auth client_credentials is for destinations of type infn only" in p for p in found), found


def test_token_check_schedule_is_validated():
    assert not problems(host())
    found = problems(dict(host(), cloud_backup_client_token_check_schedule="0 0 25 * * *"))
    assert any("cloud_backup_client_token_check_schedule" in p for p in found), found


def test_the_secret_is_never_in_dotenv():
    from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _model
    text = _model.dotenv(model(host()))
    assert "a-real-client-secret-123" not in text and "OIDC_CC_SECRET_FILE='/run/secrets/OIDC_CC_CLIENT_SECRET'" in text


# ------------------------------------------------------------------ status
def status_row(**over):
    import datetime as dt
    from ansible_collections.infn_cloud.backup.plugins.filter import cloud_backup_day2 as f
    now = 1_800_000_000.0
    when = dt.datetime.fromtimestamp(now - 3600, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    snap = {"time": when, "short_id": "abcd1234", "paths": ["/backup/data"], "summary": {"total_bytes_processed": 10}}
    facts = {"running": True, "snapshots": {"snapshots": [snap], "latest": snap}, "checks": [], "prefix": "h1",
             "oidc": False, "auth": "client_credentials", "client": True, "client_error": ""}
    facts.update(over)
    return f.cloud_backup_status_row("h1", facts, now, 26, 7), f


def test_status_shows_the_auth_mode_and_client_when_healthy():
    row, f = status_row()
    assert row["verdict"] == "ok" and row["token"] == "client" and row["auth"] == "client_credentials"
    table = f.cloud_backup_status_table([row])
    assert table[0].split()[:3] == ["HOST", "DESTINATION", "AUTH"] and "client_credentials" in table[1]
    assert "client" in table[1].split()


def test_status_fails_a_host_whose_client_gets_no_token():
    row, f = status_row(client_error="the client x cannot obtain a token from https://iam/token (HTTP 401: invalid_client)")
    assert row["verdict"] == "failing" and row["token"] == "client failing"
    assert any("the client cannot obtain a token: the client x" in r for r in row["reasons"])


def test_status_of_other_hosts_unchanged():
    row, f = status_row(auth="oidc_agent", client=False, oidc=True, days_left=20)
    assert row["token"] == "20.0 d" and row["verdict"] == "ok"
    row, f = status_row(auth=None, client=False)
    assert row["token"] == "n/a" and row["auth"] == "n/a"

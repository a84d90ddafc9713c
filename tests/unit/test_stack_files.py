"""The stack_files module, run as Ansible runs it (a process reading its arguments) on a temporary directory."""

import json
import os
import stat
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(REPO, "plugins", "modules", "stack_files.py")
SECRET = "s3cr3t-value-never-shown"


def run(tmp_path, check=False, diff=False, **args):
    params = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
    res = subprocess.run([sys.executable, MODULE, str(path)], capture_output=True, text=True)
    out = json.loads(res.stdout)
    return out, res.stdout + res.stderr


def spec(root):
    return dict(
        directories=[{"path": str(root), "mode": "0750"}, {"path": str(root / "secrets"), "mode": "0700",
                                                           "owner": "1000", "group": "1000"}],
        files=[{"path": str(root / ".env"), "content": "A='1'\n", "mode": "0600"},
               {"path": str(root / "compose.yaml"), "content": "services: {}\n", "mode": "0644"}],
        private_files=[{"path": str(root / "secrets" / "PASSWORD"), "content": SECRET, "mode": "0600",
                       "owner": "1000", "group": "1000"}],
        exclusive=[str(root / "secrets")],
        absent=[str(root / "old.ini")])


@pytest.fixture
def root(tmp_path):
    return tmp_path / "stack"


def test_first_run_writes_everything_and_the_rerun_nothing(tmp_path, root):
    first, _ = run(tmp_path, **spec(root))
    assert first["changed"] and len(first["written"]) == 3 and first["directories"] == [str(root), str(root / "secrets")]
    st = os.stat(root / "secrets" / "PASSWORD")
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (1000, 1000)
    assert stat.S_IMODE(os.stat(root / "secrets").st_mode) == 0o700
    assert (root / ".env").read_text() == "A='1'\n" and stat.S_IMODE(os.stat(root / ".env").st_mode) == 0o600
    second, _ = run(tmp_path, **spec(root))
    assert not second["changed"] and second["written"] == [] and second["removed"] == [] and second["directories"] == []


def test_check_mode_predicts_and_changes_nothing(tmp_path, root):
    out, _ = run(tmp_path, check=True, **spec(root))
    assert out["changed"] and len(out["written"]) == 3
    assert not root.exists()
    run(tmp_path, **spec(root))
    changed = spec(root)
    changed["files"][1]["content"] = "services: {a: {}}\n"
    out, _ = run(tmp_path, check=True, diff=True, **changed)
    assert out["written"] == [str(root / "compose.yaml")]
    assert (root / "compose.yaml").read_text() == "services: {}\n"
    (diff,) = out["diff"]
    assert diff["before"] == "services: {}\n" and diff["after"] == "services: {a: {}}\n"


def test_a_secret_never_appears_in_the_result_nor_its_diff(tmp_path, root):
    run(tmp_path, **spec(root))
    changed = spec(root)
    changed["private_files"][0]["content"] = SECRET + "-new"
    out, text = run(tmp_path, diff=True, **changed)
    assert out["written"] == [str(root / "secrets" / "PASSWORD")]
    assert SECRET not in text, text
    assert (root / "secrets" / "PASSWORD").read_text() == SECRET + "-new"
    assert [d["after"] for d in out["diff"]] == ["(secret file, changed)\n"]


def test_stale_files_of_an_exclusive_directory_and_absent_files_are_removed(tmp_path, root):
    run(tmp_path, **spec(root))
    (root / "secrets" / "HC_PING_OLD").write_text("http://hc/ping/old")
    (root / "old.ini").write_text("[x]\n")
    out, _ = run(tmp_path, **spec(root))
    assert sorted(out["removed"]) == [str(root / "old.ini"), str(root / "secrets" / "HC_PING_OLD")]
    assert not (root / "old.ini").exists() and (root / "secrets" / "PASSWORD").exists()


def test_a_mode_or_owner_drift_is_fixed_and_shown(tmp_path, root):
    run(tmp_path, **spec(root))
    os.chmod(root / "compose.yaml", 0o666)
    os.chown(root / "secrets", 0, 0)
    out, _ = run(tmp_path, diff=True, **spec(root))
    assert out["written"] == [str(root / "compose.yaml")] and out["directories"] == [str(root / "secrets")]
    assert stat.S_IMODE(os.stat(root / "compose.yaml").st_mode) == 0o644
    assert os.stat(root / "secrets").st_uid == 1000
    assert any("'mode': '0666'" in d["before"] and "'mode': '0644'" in d["after"] for d in out["diff"])


def test_bad_input_fails_naming_the_file(tmp_path, root):
    bad = spec(root)
    bad["files"][0]["mode"] = "rw-r"
    out, _ = run(tmp_path, **bad)
    assert out.get("failed") and "files[0].mode 'rw-r' is not an octal mode" in out["msg"] and ".env" in out["msg"]
    assert not root.exists()  # nothing was changed: not even the directories that came first
    root.mkdir(exist_ok=True)
    (root / "compose.yaml").mkdir()
    out, _ = run(tmp_path, **spec(root))
    assert out.get("failed") and "compose.yaml exists and is not a regular file" in out["msg"]

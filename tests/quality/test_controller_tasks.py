"""Whatever runs on the controller never uses sudo there (issue 18): every task of roles/ and playbooks/ delegated to the
controller, every play on localhost, and every run_once action the controller runs itself states become: false, so a
play-level become: true (or ansible_become: true in group_vars) around the role only reaches the managed hosts, and a
controller without sudo (an AWX runner, an unprivileged user) runs them all.

Delegated tasks and localhost plays also set the variable ansible_become: false (a variable beats the become keyword:
ansible_become: true in group_vars/all would otherwise reach localhost) and their own local connection."""

import glob
import os

import yaml
from ansible.playbook.task import Task

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTROLLER = {"localhost", "127.0.0.1", "::1"}
KEYWORDS = set(Task.fattributes) | {"local_action", "block", "rescue", "always", "with_items", "with_dict",
                                    "with_list", "with_fileglob", "with_sequence", "with_subelements", "with_nested"}
# actions the controller runs itself, without a module on any host (run_once ones must say become: false too)
CONTROLLER_ACTIONS = {"debug", "assert", "fail", "set_fact", "show_text"}
PLAY_TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")


def _action(task):
    names = [k for k in task if k not in KEYWORDS]
    return names[0].rsplit(".", 1)[-1] if names else None


def _delegated(task):
    return "local_action" in task or str(task.get("delegate_to", "")).strip() in CONTROLLER


def _local(ctx):
    return ctx.get("connection") == "local" or (ctx.get("vars") or {}).get("ansible_connection") == "local"


def _walk(tasks, where, ctx, problems):
    """Each task with what it inherits from its blocks (become, vars, delegation, connection, run_once)."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        here = dict(ctx)
        for key in ("become", "delegate_to", "connection", "run_once"):
            if key in task:
                here[key] = task[key]
        here["vars"] = dict(ctx.get("vars") or {}, **(task.get("vars") or {}))
        here["delegated"] = ctx.get("delegated") or _delegated(task)
        name = "%s: %s" % (where, task.get("name", "<unnamed>"))
        if any(k in task for k in ("block", "rescue", "always")):
            for part in ("block", "rescue", "always"):
                _walk(task.get(part), where, here, problems)
            continue
        if here["delegated"] or here.get("connection") == "local":
            missing = [what for what, ok in (
                ("become: false", here.get("become") is False),
                ("vars: ansible_become: false", here["vars"].get("ansible_become") is False),
                ("a local connection (vars: ansible_connection: local)", _local(here)),
            ) if not ok]
            if missing:
                problems.append("%s runs on the controller without %s" % (name, ", ".join(missing)))
        elif here.get("run_once") and _action(task) in CONTROLLER_ACTIONS and here.get("become") is not False:
            problems.append("%s (run_once %s, on the controller) without become: false" % (name, _action(task)))


def controller_problems(root=REPO):
    problems = []
    for path in sorted(glob.glob(os.path.join(root, "roles", "*", "tasks", "*.yml"))
                       + glob.glob(os.path.join(root, "roles", "*", "handlers", "*.yml"))):
        _walk(yaml.safe_load(open(path)), os.path.relpath(path, root), {}, problems)
    for path in sorted(glob.glob(os.path.join(root, "playbooks", "*.yml"))):
        where = os.path.relpath(path, root)
        for play in yaml.safe_load(open(path)) or []:
            if "import_playbook" in play or "ansible.builtin.import_playbook" in play:
                continue
            ctx = {key: play[key] for key in ("become", "connection") if key in play}
            ctx["vars"] = play.get("vars") or {}
            if str(play.get("hosts", "")).strip() in CONTROLLER or play.get("connection") == "local":
                missing = [what for what, ok in (
                    ("become: false", play.get("become") is False),
                    ("vars: ansible_become: false", ctx["vars"].get("ansible_become") is False),
                    ("connection: local", play.get("connection") == "local"),
                ) if not ok]
                if missing:
                    problems.append("%s: play %s runs on the controller without %s"
                                    % (where, play.get("name", "<unnamed>"), ", ".join(missing)))
                else:
                    ctx["delegated"] = True  # its tasks may not undo it
            for part in PLAY_TASK_LISTS:
                _walk(play.get(part), where, ctx, problems)
    return problems


def test_nothing_runs_on_the_controller_with_become():
    problems = controller_problems()
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_delegated_task_without_become_false(tmp_path):
    """The check itself: a delegated task relying on the play's become is found, so is a localhost play."""
    tasks = tmp_path / "roles" / "r" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(yaml.safe_dump([
        {"name": "Call an API", "ansible.builtin.uri": {"url": "http://127.0.0.1"}, "delegate_to": "localhost"},
        {"name": "On the controller, done right", "ansible.builtin.uri": {"url": "http://127.0.0.1"},
         "delegate_to": "localhost", "become": False,
         "vars": {"ansible_become": False, "ansible_connection": "local"}},
        {"name": "Inside a block", "block": [{"name": "Write a file", "ansible.builtin.copy": {"dest": "/tmp/x", "content": ""}}],
         "delegate_to": "localhost", "become": False, "vars": {"ansible_connection": "local"}},
        {"name": "One table", "ansible.builtin.debug": {"msg": "x"}, "run_once": True},
        {"name": "On a host, once", "ansible.builtin.command": "true", "run_once": True},
    ]))
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "p.yml").write_text(yaml.safe_dump([
        {"name": "Check", "hosts": "localhost", "gather_facts": False, "tasks": [{"ansible.builtin.assert": {"that": True}}]}]))
    problems = controller_problems(str(tmp_path))
    assert len(problems) == 4, problems
    assert "Call an API runs on the controller without become: false, vars: ansible_become: false" in problems[0]
    assert "Write a file runs on the controller without vars: ansible_become: false" in problems[1]
    assert "One table (run_once debug" in problems[2]
    assert "play Check runs on the controller without become: false" in problems[3]

"""The shipped execution environment (ee/execution-environment.yml), offline: ansible-builder writes a build context
that installs the collection from its built tarball plus community.docker, and ansible-builder's introspection finds
the collection's own Python and system requirements (meta/execution-environment.yml). The README embeds the file."""

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
EE_FILE = os.path.join(REPO, "ee", "execution-environment.yml")
DEAD = "http://127.0.0.1:9"  # nothing listens there: any download attempt fails


def offline_env(**extra):
    """An environment in which nothing can be downloaded: pip without an index, proxies to a dead port, no
    collections path of the checkout (the tools must read only what the test gives them)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "ANSIBLE_COLLECTIONS_PATH"}
    env.update(PIP_NO_INDEX="1", http_proxy=DEAD, https_proxy=DEAD, HTTP_PROXY=DEAD, HTTPS_PROXY=DEAD,
               ANSIBLE_GALAXY_SERVER=DEAD, ANSIBLE_COLLECTIONS_PATH=os.devnull, **extra)
    return env


def run(argv, cwd=REPO, env=None):
    """ARGV offline; with root and unshare, also in a network namespace of its own (no interface but loopback)."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--net"] + argv
    result = subprocess.run(argv, cwd=cwd, env=env or offline_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, "%s: %s%s" % (" ".join(argv), result.stdout, result.stderr)
    return result.stdout


def requirement_lines(path):
    """The requirement lines of a pip or bindep file (as ansible-builder reads them: no blank or comment lines)."""
    return [line.strip() for line in open(path) if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def definition():
    return yaml.safe_load(open(EE_FILE))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection")
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), "."])
    version = yaml.safe_load(open(os.path.join(REPO, "galaxy.yml")))["version"]
    path = out / ("infn_cloud-backup-%s.tar.gz" % version)
    assert path.exists(), os.listdir(out)
    return path


@pytest.fixture(scope="module")
def context(tmp_path_factory, tarball):
    """`ansible-builder create` on the shipped definition, the tarball next to it as its header says."""
    work = tmp_path_factory.mktemp("ee")
    (work / "ee").mkdir()
    shutil.copy(EE_FILE, work / "ee")
    shutil.copy(tarball, work / "ee")
    run([os.path.join(BIN, "ansible-builder"), "create", "-f", "ee/execution-environment.yml", "-c", "context",
         "--output-filename", "Containerfile"], cwd=str(work))
    return work / "context"


def test_the_context_installs_the_collection_tarball_and_community_docker(definition, tarball, context):
    assert definition["version"] == 3
    containerfile = (context / "Containerfile").read_text()
    # the galaxy stage copies the context's _build to /build and installs its requirements.yml from there
    assert "COPY _build /build\nWORKDIR /build\n" in containerfile
    assert re.search(r"^RUN .*ansible-galaxy collection install .*-r requirements\.yml ", containerfile, re.M), containerfile
    # the builder stage introspects the installed collections (their meta/execution-environment.yml) and installs them
    assert re.search(r"^RUN \$PYCMD /output/scripts/introspect\.py introspect ", containerfile, re.M), containerfile
    assert "RUN /output/scripts/install-from-bindep" in containerfile
    assert re.search(r"^ARG ANSIBLE_INSTALL_REFS=\"ansible-core[^\"]* ansible-runner\"$", containerfile, re.M)

    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    by_name = {r["name"]: r for r in requirements}
    assert by_name["community.docker"]["version"] == yaml.safe_load(
        open(os.path.join(REPO, "galaxy.yml")))["dependencies"]["community.docker"]
    files = [r for r in requirements if r.get("type") == "file"]
    assert len(files) == 1, requirements
    # the name is a path relative to /build (the galaxy stage's WORKDIR), i.e. to the context's _build
    shipped = context / "_build" / files[0]["name"]
    assert shipped.name == tarball.name, "ee/execution-environment.yml names %s, galaxy.yml builds %s" % (
        shipped.name, tarball.name)
    assert shipped.is_file() and filecmp.cmp(shipped, tarball, shallow=False)
    with tarfile.open(shipped) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("infn_cloud", "backup")


def test_the_ansible_core_of_the_image_is_one_the_collection_supports(definition):
    core = definition["dependencies"]["ansible_core"]["package_pip"]
    requires = yaml.safe_load(open(os.path.join(REPO, "meta", "runtime.yml")))["requires_ansible"]
    assert bounds(core) == bounds(requires), (core, requires)


def bounds(spec):
    """[(operator, major.minor)] of a version specifier: '>=2.19,<2.21' and '>=2.19.0,<2.21.0' are the same."""
    return sorted(re.findall(r"([<>]=?)\s*(\d+\.\d+)", spec))


def introspect(collections):
    """{python|system: [requirement lines of infn_cloud.backup]} as `ansible-builder introspect` reports them."""
    report = yaml.safe_load(run([os.path.join(BIN, "ansible-builder"), "introspect", str(collections)]))
    mine = "  # from collection infn_cloud.backup"
    return {kind: [line[:-len(mine)] for line in report[kind] or [] if line.endswith(mine)] for kind in ("python", "system")}


def test_introspection_finds_the_collections_own_requirements(context, tmp_path):
    # installed offline from the context's own requirement entry, from /build as the galaxy stage runs it
    entry = [r for r in yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
             if r.get("type") == "file"]
    only = tmp_path / "requirements.yml"
    only.write_text(yaml.safe_dump({"collections": entry}))
    collections = tmp_path / "collections"
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force",
         "-r", str(only), "-p", str(collections)], cwd=str(context / "_build"))
    installed = collections / "ansible_collections" / "infn_cloud" / "backup"
    meta = yaml.safe_load((installed / "meta" / "execution-environment.yml").read_text())["dependencies"]
    assert meta == {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"}

    system = requirement_lines(os.path.join(REPO, "meta", "ee-bindep.txt"))
    python = requirement_lines(os.path.join(REPO, "meta", "ee-requirements.txt"))
    assert system, "meta/ee-bindep.txt lists nothing"
    assert introspect(collections) == {"python": python, "system": system}

    # the python file is wired too (it lists nothing today): a line added to it is reported
    with open(installed / "meta" / "ee-requirements.txt", "a") as handle:
        handle.write("planted-requirement>=1.0\n")
    assert introspect(collections)["python"] == python + ["planted-requirement>=1.0"]


def test_the_readme_embeds_the_shipped_definition():
    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme.split("## Running from AWX / Automation Platform\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```yaml\n(.*?)^```$", section, re.M | re.S)
    shipped = open(EE_FILE).read()
    assert shipped in blocks, "README's AWX section must embed ee/execution-environment.yml verbatim"
    # its header holds the build commands: the tarball next to the definition, then ansible-builder on it
    assert "ansible-galaxy collection build --force --output-path ee/" in shipped
    assert "ansible-builder build -f ee/execution-environment.yml " in shipped

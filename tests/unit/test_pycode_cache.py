"""The lab VMs' cache of compiled code for zip imports (lab/images/vm/pycode_cache.py), in interpreters of their own
(this test process keeps its zipimport as it is): a module imported from a zip behaves the same with the cache as
without, the second import of the same source reads the kept code, its tracebacks name the zip it came from, a
changed source is compiled anew, and a cache entry that is not root's is never read (the lab runs as root, as the
VMs' modules do)."""

import os
import subprocess
import sys
import zipfile

CACHE_MODULE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "lab", "images", "vm", "pycode_cache.py")

SOURCE = '''
def answer():
    return sum(range(7)) * 2

def fail():
    raise ValueError("from the zip")
'''

PROBE = r'''
import importlib.util, sys, traceback
spec = importlib.util.spec_from_file_location("pycode_cache", sys.argv[1])
cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache)
cache.PYCODE_CACHE = sys.argv[2]
sys.path.insert(0, sys.argv[3])
import payload
print(payload.answer())
try:
    payload.fail()
except ValueError as exc:
    print(traceback.extract_tb(exc.__traceback__)[-1].filename)
'''

def zip_with(path, source):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("payload.py", source)
    return str(path)


def run(cache_dir, archive):
    out = subprocess.run([sys.executable, "-c", PROBE, CACHE_MODULE, str(cache_dir), archive], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return out[0], out[1]


def test_the_second_import_reads_the_kept_code_and_names_its_own_zip(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    first = run(cache, zip_with(tmp_path / "run1.zip", SOURCE))
    entries = sorted(os.listdir(cache))
    assert first[0] == "42" and len(entries) == 1
    assert first[1] == str(tmp_path / "run1.zip" / "payload.py")
    # a new run's zip of the same source: the kept code, named after the new zip (its traceback shows that file)
    os.utime(cache / entries[0], (1, 1))
    second = run(cache, zip_with(tmp_path / "run2.zip", SOURCE))
    assert second == ("42", str(tmp_path / "run2.zip" / "payload.py"))
    assert sorted(os.listdir(cache)) == entries and os.stat(cache / entries[0]).st_mtime == 1  # read, not rewritten
    # another source: compiled, kept under its own entry
    changed = run(cache, zip_with(tmp_path / "run3.zip", SOURCE.replace("* 2", "* 3")))
    assert changed[0] == "63" and len(os.listdir(cache)) == 2


def test_an_entry_not_written_by_root_is_not_read(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    run(cache, zip_with(tmp_path / "run1.zip", SOURCE))
    (entry,) = os.listdir(cache)
    # in its place, another user's entry: code that would answer 0
    evil = tmp_path / "evil"
    evil.mkdir()
    run(evil, zip_with(tmp_path / "evil.zip", SOURCE.replace("* 2", "* 0")))
    (evil_entry,) = os.listdir(evil)
    os.replace(evil / evil_entry, cache / entry)
    os.chown(cache / entry, 1000, 1000)
    assert run(cache, zip_with(tmp_path / "run2.zip", SOURCE))[0] == "42"

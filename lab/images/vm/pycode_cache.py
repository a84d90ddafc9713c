"""The lab VMs' cache of compiled code for modules imported from zip archives.

Ansible runs every module as an AnsiballZ payload: a zip of the module and its module_utils on sys.path, which
zipimport compiles from source on every run (a zip holds no __pycache__). On a lab VM that compile is most of a
module run's CPU, and the lab's VMs share this machine's two cores. This cache does for those zips what
__pycache__ does for installed modules: the code compiled from a given source is kept under the source's SHA-256
(and the interpreter's bytecode magic) in PYCODE_CACHE, a directory the lab mounts into every VM, and reused. The
source run is the same; only its compile is skipped, so a module behaves exactly as without the cache.

Loaded at interpreter start by infn-lab-pycode-cache.pth. Only root writes the cache (modules run as root; an
entry written by another user is never read), and any failure falls back to a plain compile.
"""

import hashlib
import importlib.util
import marshal
import os
import types
import zipimport

PYCODE_CACHE = "/var/cache/infn-lab-pycode"
_compile = zipimport._compile_source


def _with_filename(code, filename):
    """CODE and every code object nested in it, naming FILENAME (this run's zip) as where they come from."""
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _compile_source(pathname, source):
    digest = hashlib.sha256(importlib.util.MAGIC_NUMBER + bytes(source)).hexdigest()
    entry = os.path.join(PYCODE_CACHE, digest)
    try:
        if os.stat(entry).st_uid == 0:
            with open(entry, "rb") as handle:
                return _with_filename(marshal.load(handle), pathname)
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = _compile(pathname, source)
    if os.geteuid() == 0 and os.path.isdir(PYCODE_CACHE):
        part = "%s.%d" % (entry, os.getpid())
        try:
            with open(part, "wb") as handle:
                marshal.dump(code, handle)
            os.replace(part, entry)
        except OSError:
            try:
                os.unlink(part)
            except OSError:
                pass
    return code


zipimport._compile_source = _compile_source

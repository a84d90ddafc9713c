"""ofelia stand-in: `daemon --config=FILE` or `validate --config=FILE`, as the real CLI."""
import signal
import sys
import time

sys.path.insert(0, "/opt/ofelia-standin")
import _ofelia  # noqa: E402  (copied from plugins/module_utils at build time)


def main(argv):
    command = argv[0] if argv else "daemon"
    config = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "/etc/ofelia/config.ini")
    try:
        with open(config, encoding="utf-8") as handle:
            parsed = _ofelia.parse_config(handle.read())
    except (OSError, _ofelia.ConfigError) as exc:
        print("ofelia stand-in: cannot load %s: %s" % (config, exc), flush=True)
        return 1
    for (kind, name), keys in sorted(parsed["jobs"].items()):
        print('New job registered "%s" - "%s" - "%s" (%s)' % (name, keys["command"], keys["schedule"], kind), flush=True)
    if command == "validate":
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env bash
# Debian's chromium on the controller, for tests/lab/test_85_status_page.py (the status page rendered in headless
# Chromium). Idempotent: installs only when `chromium` is not on PATH.
#   bash lab/chromium.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
log "installing Debian's chromium (headless browser for the status page test)"
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
apt-get update -qq
# a font of its own: without recommends, nothing else guarantees one and the page's text would not render
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 || die "chromium is still not on PATH after apt-get install chromium"

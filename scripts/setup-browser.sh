#!/usr/bin/env bash
# Debian's Chromium, for the inspector's browser test (tests/e2e/test_inspector.py), which drives it
# headless with Playwright (the `playwright` package of the dev extra, installed by scripts/setup.sh).
# Playwright never downloads a browser of its own here: the test launches /usr/bin/chromium, and
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 is set for any install that would. Idempotent: with Chromium
# installed it only checks (well under a second). scripts/test.sh (and so CI) runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# shellcheck source=scripts/setup-common.sh
. scripts/setup-common.sh

if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-browser: installing chromium needs root (apt-get install chromium)" >&2
    exit 1
  fi
fi
# Its recommends (udev, upower, printing, a notification daemon) are for a desktop; headless needs
# none of them (fonts come with fontconfig).
install_missing setup-browser --no-install-recommends chromium
/usr/bin/chromium --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 || {
  echo "setup-browser: /usr/bin/chromium is installed but does not start" >&2
  exit 1
}

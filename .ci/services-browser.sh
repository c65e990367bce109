# shellcheck shell=bash
# Sourced by .ci/run (set -euo pipefail, root, CI=true): Debian's chromium for the `study`
# end-to-end test, driven by Playwright with executable_path (never a browser download).
# Exports PLAYWRIGHT_CHROMIUM_EXECUTABLE. Installs the package only when missing.
if ! command -v chromium >/dev/null 2>&1; then
  echo "services-browser: installing Debian's chromium"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export PLAYWRIGHT_CHROMIUM_EXECUTABLE
PLAYWRIGHT_CHROMIUM_EXECUTABLE=$(command -v chromium)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
echo "services-browser: $("$PLAYWRIGHT_CHROMIUM_EXECUTABLE" --version 2>/dev/null || echo chromium) at $PLAYWRIGHT_CHROMIUM_EXECUTABLE"

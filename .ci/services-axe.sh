# shellcheck shell=bash
# Sourced by .ci/run (set -euo pipefail, root, CI=true): axe-core, the accessibility checker the
# `study` browser tests inject into the participant pages, from the npm registry at the version
# package-lock.json pins. Exports AXE_CORE_JS. Idempotent: installs Debian's npm only when
# missing, and runs `npm ci` only when node_modules/axe-core does not match the lock file.
if ! command -v npm >/dev/null 2>&1; then
  echo "services-axe: installing Debian's npm"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
_mdf_axe_want=$(python3 -c 'import json; print(json.load(open("package-lock.json"))["packages"]["node_modules/axe-core"]["version"])')
_mdf_axe_have=$(python3 -c 'import json; print(json.load(open("node_modules/axe-core/package.json"))["version"])' 2>/dev/null || true)
if [ "$_mdf_axe_want" != "$_mdf_axe_have" ]; then
  echo "services-axe: npm ci (axe-core $_mdf_axe_want)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
export AXE_CORE_JS="$PWD/node_modules/axe-core/axe.min.js"
echo "services-axe: axe-core $_mdf_axe_want at $AXE_CORE_JS"

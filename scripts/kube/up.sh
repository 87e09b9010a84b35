#!/usr/bin/env bash
# Start a real single-node Kubernetes for the tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, a kubelet on a private containerd
# with a CNI bridge, and a plain-HTTP image registry on loopback that the
# node pulls from. Everything lives under $WISP_KUBE_DIR (default
# /tmp/wisp-kube); scripts/kube/down.sh undoes it all.
#
# It writes $WISP_KUBE_DIR/env, which the tests read:
#   KUBECONFIG=...            an admin kubeconfig
#   WISP_KUBE_REGISTRY=...    host:port of the registry, on loopback
#   WISP_KUBE_POD_REGISTRY=.. the same registry as pods reach it (the
#                             bridge's gateway); the node pulls both names
#   WISP_KUBE_NODE_IP=...     the node's address
#   WISP_KUBE_BIN=...         where kubectl and the other binaries are
#   WISP_KUBE_API_PORT=...    the apiserver's port: it listens on every
#                             address, so pods reach it at the bridge's
#                             gateway, 10.244.0.1 (there is no kube-proxy)
#
# Needs root (the kubelet), Debian's etcd-server, containerd, runc and
# containernetworking-plugins, and the binaries scripts/kube/build.sh builds
# (about 15 minutes once, then cached). A warm start takes about 10 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
DIR="${WISP_KUBE_DIR:-/tmp/wisp-kube}"
KBIN="${WISP_KUBE_CACHE:-$(go env GOPATH)/wisp-kube/$KUBE_VERSION}/bin"
NODE="${WISP_KUBE_NODE:-wisp-node}"
BRIDGE=wispk0
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/24

say() { echo "kube-up: $*"; }
die() { echo "kube-up: $*" >&2; exit 1; }

missing=()
[[ $(id -u) == 0 ]] || missing+=("root (the kubelet needs it)")
for c in etcd containerd runc ctr openssl curl ip; do
  command -v "$c" >/dev/null || missing+=("$c")
done
[[ -x /usr/lib/cni/bridge ]] || missing+=("/usr/lib/cni/bridge (apt-get install containernetworking-plugins)")
if ((${#missing[@]})); then
  die "cannot start the test cluster; missing: ${missing[*]} (apt-get install etcd-server containerd runc containernetworking-plugins openssl curl iproute2)"
fi

# Already up?
if [[ -f "$DIR/env" ]] && "$KBIN/kubectl" --kubeconfig "$DIR/pki/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  say "already running ($DIR/env)"
  exit 0
fi
if [[ -d "$DIR" ]]; then
  "$ROOT/scripts/kube/down.sh" >/dev/null 2>&1 || true
fi

"$ROOT/scripts/kube/build.sh"
start=$(date +%s.%N)

mkdir -p "$DIR"/{pki,etcd,logs,pids,registry,cni/conf,cni/data,containerd,kubelet/root,kubelet/pki,kubelet/pod-logs,bin}
PKI="$DIR/pki"

NODE_IP="${WISP_KUBE_NODE_IP:-$(ip -4 -o addr show scope global | awk '$2 != "docker0" && $2 !~ /^(br-|veth|'$BRIDGE')/ {split($4, a, "/"); print a[1]; exit}')}"
[[ -n "$NODE_IP" ]] || die "no non-loopback IPv4 address found for the node (set WISP_KUBE_NODE_IP)"

# Free ports, checked by binding them.
go build -o "$DIR/bin/harness" ./test/kube/harness
CGO_ENABLED=0 go build -trimpath -o "$DIR/bin/pause" ./test/kube/pause
mapfile -t P < <("$DIR/bin/harness" free-ports 9)
ETCD_PORT=${P[0]} ETCD_PEER=${P[1]} API_PORT=${P[2]} CM_PORT=${P[3]} SCHED_PORT=${P[4]}
KUBELET_PORT=${P[5]} KUBELET_HEALTH=${P[6]} REG_PORT=${P[7]}
REGISTRY="127.0.0.1:$REG_PORT"
# Pods (Wisp's own, on the cluster) reach the same registry at the bridge's
# gateway; the node pulls either name from loopback.
POD_REGISTRY="10.244.0.1:$REG_PORT"

# --- certificates (ECDSA P-256, valid 30 days) ---
cert() { # name subject sans(optional)
  local n=$1 subj=$2 sans=${3:-}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/$n.key" -out "$PKI/$n.csr" -subj "$subj" 2>/dev/null
  local ext="$PKI/$n.ext"
  echo "extendedKeyUsage=serverAuth,clientAuth" >"$ext"
  [[ -z "$sans" ]] || echo "subjectAltName=$sans" >>"$ext"
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -out "$PKI/$n.crt" -days 30 -extfile "$ext" 2>/dev/null
}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 30 -subj "/CN=wisp-test-ca" 2>/dev/null
cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1,IP:10.244.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost"
cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=wisp-test-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert node "/O=system:nodes/CN=system:node:$NODE"
cert kubelet-serving "/CN=$NODE" "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE"
openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

kubeconfig() { # name
  cat >"$PKI/$1.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: wisp-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $1
  user:
    client-certificate: $PKI/$1.crt
    client-key: $PKI/$1.key
contexts:
- name: wisp-test
  context: {cluster: wisp-test, user: $1}
current-context: wisp-test
YAML
}
for k in admin controller-manager scheduler node; do kubeconfig "$k"; done
export KUBECONFIG="$PKI/admin.kubeconfig"
kc() { "$KBIN/kubectl" "$@"; }

bg() { # name command...
  local n=$1; shift
  "$@" >"$DIR/logs/$n.log" 2>&1 &
  echo $! >"$DIR/pids/$n.pid"
}
wait_for() { # what seconds command...
  local what=$1 secs=$2; shift 2
  local deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) > deadline)); then
      echo "kube-up: $what did not come up within ${secs}s; last log lines:" >&2
      tail -n 20 "$DIR"/logs/*.log >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

# --- registry (plain HTTP on loopback) ---
bg registry "$DIR/bin/harness" registry "0.0.0.0:$REG_PORT" "$DIR/registry"

# --- etcd ---
bg etcd etcd --name wisp-test --data-dir "$DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "wisp-test=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync
wait_for etcd 20 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

# --- kube-apiserver ---
bg apiserver "$KBIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$NODE_IP" --anonymous-auth=false \
  --endpoint-reconciler-type=none --authorization-mode=Node,RBAC \
  --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet.crt" --kubelet-client-key="$PKI/apiserver-kubelet.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range="$SVC_CIDR" \
  --profiling=false
wait_for kube-apiserver 60 kc get --raw /readyz

# --- controller-manager and scheduler ---
bg controller-manager "$KBIN/kube-controller-manager" \
  --kubeconfig="$PKI/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port="$CM_PORT" \
  --use-service-account-credentials=true --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --allocate-node-cidrs=false --profiling=false
bg scheduler "$KBIN/kube-scheduler" \
  --kubeconfig="$PKI/scheduler.kubeconfig" \
  --authentication-kubeconfig="$PKI/scheduler.kubeconfig" --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --profiling=false

# --- containerd (private; never Docker's own) ---
CD="$DIR/containerd"
mkdir -p "$CD/root" "$CD/state" "$CD/opt" "$CD/runc"
cat >"$CD/config.toml" <<TOML
version = 2
root = "$CD/root"
state = "$CD/state"
[grpc]
  address = "$CD/containerd.sock"
[ttrpc]
  address = "$CD/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "wisp.test/pause:1"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$POD_REGISTRY"]
    endpoint = ["http://$REGISTRY"]
TOML
cat >"$DIR/cni/conf/10-wisp-test.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "wisp-test",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "dataDir": "$DIR/cni/data"}
    }
  ]
}
JSON
# The bridge exists before the first pod (the CNI plugin reuses it), so the
# host's gateway address 10.244.0.1 can be listened on from the start.
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
  ip addr add 10.244.0.1/24 dev "$BRIDGE"
  ip link set "$BRIDGE" up
fi
bg containerd containerd --config "$CD/config.toml"
# Pods on the bridge reach each other (Wisp's own pods dial the pods of the
# versions it runs): with br_netfilter, bridged traffic crosses the host's
# FORWARD chain, whose policy Docker sets to DROP. down.sh removes the rule.
if command -v iptables >/dev/null && ! iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; then
  iptables -I FORWARD 1 -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
fi
wait_for containerd 20 ctr --address "$CD/containerd.sock" version
"$DIR/bin/harness" image "$DIR/bin/pause" wisp.test/pause:1 "$DIR/pause.tar"
ctr --address "$CD/containerd.sock" -n k8s.io images import "$DIR/pause.tar" >/dev/null

# --- kubelet (it rewrites some host sysctls: saved here, restored by down.sh) ---
for s in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
  echo "$s=$(sysctl -n "$s")"
done >"$DIR/sysctl.saved"
cat >"$DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTH
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
containerRuntimeEndpoint: unix://$CD/containerd.sock
resolvConf: ""
podLogsDir: $DIR/kubelet/pod-logs
evictionHard: {memory.available: "1%", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 250
YAML
bg kubelet "$KBIN/kubelet" --config="$DIR/kubelet/config.yaml" --kubeconfig="$PKI/node.kubeconfig" \
  --root-dir="$DIR/kubelet/root" --cert-dir="$DIR/kubelet/pki" \
  --hostname-override="$NODE" --node-ip="$NODE_IP"

node_ready() { [[ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "node $NODE Ready" 60 node_ready
wait_for "the default ServiceAccount" 30 kc -n default get serviceaccount default
wait_for "the kube-root-ca.crt ConfigMap" 30 kc -n default get configmap kube-root-ca.crt

cat >"$DIR/env" <<ENV
KUBECONFIG=$PKI/admin.kubeconfig
WISP_KUBE_REGISTRY=$REGISTRY
WISP_KUBE_POD_REGISTRY=$POD_REGISTRY
WISP_KUBE_NODE_IP=$NODE_IP
WISP_KUBE_NODE=$NODE
WISP_KUBE_BIN=$KBIN
WISP_KUBE_DIR=$DIR
WISP_KUBE_API_PORT=$API_PORT
WISP_KUBE_POD_GATEWAY=10.244.0.1
ENV
say "cluster $KUBE_VERSION up in $(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $start}") s; env in $DIR/env"
say "  export KUBECONFIG=$PKI/admin.kubeconfig; registry at $REGISTRY; scripts/kube/down.sh stops it"

#!/usr/bin/env bash
# Stop the test cluster scripts/kube/up.sh started and undo what it did to
# the host: pod sandboxes (so CNI releases their addresses), the processes it
# recorded, mounts under its directory, the CNI bridge, the kubepods cgroups
# and the sysctls the kubelet rewrote. Docker and its containerd are never
# touched. Safe to run twice.
set -uo pipefail
DIR="${WISP_KUBE_DIR:-/tmp/wisp-kube}"
BRIDGE=wispk0
[[ -d "$DIR" ]] || { echo "kube-down: nothing at $DIR"; exit 0; }
KBIN="$(sed -n 's/^WISP_KUBE_BIN=//p' "$DIR/env" 2>/dev/null)"
export KUBECONFIG="$DIR/pki/admin.kubeconfig"
SOCK="$DIR/containerd/containerd.sock"

alive() { [[ -f "$DIR/pids/$1.pid" ]] && kill -0 "$(cat "$DIR/pids/$1.pid")" 2>/dev/null; }
stop() { # name: SIGTERM, then SIGKILL after 10 s
  alive "$1" || return 0
  local pid; pid=$(cat "$DIR/pids/$1.pid")
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
}

# Pods first, while the kubelet still runs: it stops their sandboxes and CNI
# DEL releases their addresses.
if [[ -n "$KBIN" ]] && alive kubelet && alive apiserver; then
  "$KBIN/kubectl" delete deployments,replicasets,pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1
  for _ in $(seq 100); do
    n=$("$KBIN/kubectl" get pods -A --no-headers 2>/dev/null | wc -l)
    ((n == 0)) && break
    sleep 0.1
  done
fi
stop kubelet
# Whatever sandboxes remain: kill their tasks through our containerd.
if alive containerd; then
  for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1
    ctr --address "$SOCK" -n k8s.io tasks rm -f "$c" >/dev/null 2>&1
  done
fi
for p in scheduler controller-manager apiserver containerd etcd registry; do stop "$p"; done
# containerd-shim processes of our containerd outlive it.
pkill -f "containerd-shim.*-address $SOCK" 2>/dev/null
sleep 0.2

# Mounts under the cluster's directory (netns, shm, rootfs), deepest first.
awk -v d="$DIR" '$2 ~ "^"d {print $2}' /proc/mounts | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null
done
ip link del "$BRIDGE" 2>/dev/null
while iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do
  iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
done
# Leftover veths whose peer was in a pod.
for v in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  [[ "$(cat /sys/class/net/"$v"/master/uevent 2>/dev/null)" == *"$BRIDGE"* ]] && ip link del "$v" 2>/dev/null
done
for sub in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [[ -d "$sub" ]] && find "$sub" -depth -type d -exec rmdir {} \; 2>/dev/null
done
if [[ -f "$DIR/sysctl.saved" ]]; then
  while IFS= read -r kv; do sysctl -q -w "$kv" >/dev/null 2>&1; done <"$DIR/sysctl.saved"
fi
rm -rf /var/lib/cni/results/wisp-test-* 2>/dev/null
rm -rf "$DIR"
echo "kube-down: stopped and removed $DIR"

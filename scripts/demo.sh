#!/usr/bin/env bash
# Replays the "Build Your Own Serverless" part-4 walkthrough on this machine,
# with no registry: build a greeting image locally, deploy three versions,
# split traffic 10/30/60, send 100 requests, and watch idle instances go.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN=${DEMO_ADMIN:-127.0.0.1:18081}
ROUTER=${DEMO_ROUTER:-127.0.0.1:18080}
DATA=$(mktemp -d /tmp/wisp-demo.XXXXXX)
WISP="bin/wisp --server $ADMIN --data-dir $DATA"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Build wisp and the greeting image (a static Go binary, FROM scratch)"
go build -o bin/wisp ./cmd/wisp
go run ./internal/runtime/docker/dockertest/mkimage ./testdata/greeter hello:demo

step "Start wisp serve (admin API on $ADMIN, router on $ROUTER)"
bin/wisp serve --data-dir "$DATA" --admin-addr "$ADMIN" --addr "$ROUTER" --reap-interval 500ms >"$DATA/wisp.log" 2>&1 &
WISP_PID=$!
cleanup() {
  kill -INT "$WISP_PID" 2>/dev/null && wait "$WISP_PID" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -fsS "http://$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

step "Create the service and three versions"
$WISP service create hello --idle-timeout 4s --pause-after 2s
$WISP version create hello hello:demo --env GREETING=Go
$WISP version create hello hello:demo --env GREETING=Docker
$WISP version create hello hello:demo --env GREETING=sqlite

step "Split traffic 10/30/60"
$WISP traffic set hello 1=10 2=30 3=60 -m "walkthrough split"

step "The walkthrough's own API still works (seed-compatible routes)"
TOKEN=$(cat "$DATA/admin-token")
curl -fsS -H "Authorization: Bearer $TOKEN" "http://$ADMIN/serviceDefinitions/hello" | sed 's/^/  /'

step "100 requests to hello.localhost (the first starts the containers)"
for _ in $(seq 100); do curl -fsS -H 'Host: hello.localhost' "http://$ROUTER/"; done | sort | uniq -c

step "Instances now"
$WISP instances hello

step "Idle instances are paused after 2s and removed after 4s"
sleep 2.5
$WISP instances hello
sleep 2.5
$WISP instances hello
echo "  wisp containers left: $(docker ps -q --filter label=wisp.service=hello | wc -l)"

step "The next request starts a new container"
curl -fsS -D - -o /dev/null -H 'Host: hello.localhost' "http://$ROUTER/" | grep -i '^wisp-' | sed 's/^/  /'

step "Done; stopping wisp removes its containers"

#!/usr/bin/env bash
# Replays the "Build Your Own Serverless" part-4 walkthrough on this machine,
# with no registry: build a greeting image locally, deploy three versions,
# split traffic 10/30/60, send 100 requests, and watch idle instances go.
#
# DEMO_ADMIN and DEMO_ROUTER choose the daemon's addresses (default
# 127.0.0.1:18081 and 127.0.0.1:18080). A failed demo keeps the daemon's log
# and says where it is.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN=${DEMO_ADMIN:-127.0.0.1:18081}
ROUTER=${DEMO_ROUTER:-127.0.0.1:18080}
IMAGE=wisp-demo-greeter:latest # Wisp's own name: never a user's hello:…
DATA=$(mktemp -d /tmp/wisp-demo.XXXXXX)
LOG=$DATA/wisp.log
WISP="bin/wisp --server $ADMIN --data-dir $DATA"
WISP_PID=
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  status=$?
  if [ -n "$WISP_PID" ]; then
    kill -INT "$WISP_PID" 2>/dev/null && wait "$WISP_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    if [ -s "$LOG" ]; then
      printf '\nThe demo failed (exit %d). The last lines of the daemon log:\n' "$status" >&2
      tail -n 15 "$LOG" | sed 's/^/  /' >&2
    fi
    printf 'The log is kept in %s\n' "$LOG" >&2
  else
    rm -rf "$DATA"
  fi
}
trap cleanup EXIT

step "Build wisp and the greeting image $IMAGE (a static Go binary, FROM scratch)"
go build -o bin/wisp ./cmd/wisp
go run ./internal/runtime/docker/dockertest/mkimage ./testdata/greeter "$IMAGE"

step "Start wisp serve (admin API on $ADMIN, router on $ROUTER; DEMO_ADMIN, DEMO_ROUTER change them)"
bin/wisp serve --data-dir "$DATA" --admin-addr "$ADMIN" --addr "$ROUTER" --reap-interval 500ms >"$LOG" 2>&1 &
WISP_PID=$!
healthy=
for _ in $(seq 100); do
  if ! kill -0 "$WISP_PID" 2>/dev/null; then
    wait "$WISP_PID" || true
    WISP_PID=
    echo "wisp serve exited at start:" >&2
    grep -m1 -i 'error' "$LOG" | sed 's/^/  /' >&2 || true
    exit 1
  fi
  if curl -fsS "http://$ADMIN/healthz" >/dev/null 2>&1; then healthy=1; break; fi
  sleep 0.1
done
if [ -z "$healthy" ]; then
  echo "wisp serve did not answer on $ADMIN within 10s" >&2
  exit 1
fi

step "Create the service and three versions"
$WISP service create hello --idle-timeout 4s --pause-after 2s
$WISP version create hello "$IMAGE" --env GREETING=Go
$WISP version create hello "$IMAGE" --env GREETING=Docker
$WISP version create hello "$IMAGE" --env GREETING=sqlite

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

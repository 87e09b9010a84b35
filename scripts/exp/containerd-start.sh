#!/usr/bin/env bash
# An experiment, not a test (issue 14, part 3): how much of a sandboxed cold
# start is the Docker API's own, and how much would starting through
# containerd directly save? It starts the same image into a prepared
# network namespace both ways, N times each, alternating, and times each
# start until the first HTTP 200 at the namespace's address:
#
#   docker: docker run -d --network container:<holder> IMAGE
#   ctr:    ctr run -d --with-ns network:/proc/<holder pid>/ns/net IMAGE
#           against the engine's own containerd (its socket under
#           /var/run/docker/containerd), in a namespace of its own, on
#           containerd's overlayfs snapshotter (the engine here uses
#           fuse-overlayfs for its layers)
#
# Both include one CLI process start (docker and ctr are each a Go binary
# talking to its daemon); curl polls every 2 ms. Needs root, Docker, ctr
# (Debian's containerd package) and curl; run from the module root:
#   bash scripts/exp/containerd-start.sh [N]
# It removes everything it made.
set -euo pipefail

N="${1:-10}"
IMAGE="wisp-greeter:exp"
NS="wisp-exp"
NET="wisp-exp"
SOCK="/var/run/docker/containerd/containerd.sock"
CTR=(ctr --address "$SOCK" -n "$NS")

cleanup() {
  docker rm -f wisp-exp-holder wisp-exp-app >/dev/null 2>&1 || true
  "${CTR[@]}" task kill -s KILL wisp-exp-app >/dev/null 2>&1 || true
  "${CTR[@]}" task rm -f wisp-exp-app >/dev/null 2>&1 || true
  "${CTR[@]}" container rm wisp-exp-app >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

tmp="$(mktemp -d)"
trap 'cleanup; rm -rf "$tmp"' EXIT
echo "building $IMAGE from ./testdata/greeter (static, FROM scratch)…"
CGO_ENABLED=0 go build -o "$tmp/greeter" ./testdata/greeter
printf 'FROM scratch\nCOPY greeter /greeter\nENTRYPOINT ["/greeter"]\n' > "$tmp/Dockerfile"
docker build -q -t "$IMAGE" "$tmp" >/dev/null
docker save "$IMAGE" | "${CTR[@]}" images import - >/dev/null
ref="$("${CTR[@]}" images ls -q | grep "$IMAGE" | head -1)"

docker network create "$NET" >/dev/null
# The holder: the same image on another port, standing in for Wisp's sandbox.
docker run -d --name wisp-exp-holder --network "$NET" -e PORT=9999 "$IMAGE" >/dev/null
pid="$(docker inspect -f '{{.State.Pid}}' wisp-exp-holder)"
ip="$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" wisp-exp-holder)"
url="http://$ip:8080/"

now() { date +%s%N; }
wait200() {
  for _ in $(seq 1 5000); do
    if curl -fs -o /dev/null --max-time 1 "$url"; then return 0; fi
    sleep 0.002
  done
  echo "no answer at $url" >&2
  return 1
}

docker_ms=(); ctr_ms=()
for i in $(seq 1 "$N"); do
  t0=$(now)
  docker run -d --name wisp-exp-app --network container:wisp-exp-holder "$IMAGE" >/dev/null
  wait200
  t1=$(now)
  docker_ms+=($(( (t1 - t0) / 1000000 )))
  docker rm -f wisp-exp-app >/dev/null
  sleep 0.3

  t0=$(now)
  "${CTR[@]}" run -d --with-ns "network:/proc/$pid/ns/net" "$ref" wisp-exp-app >/dev/null 2>&1
  wait200
  t1=$(now)
  ctr_ms+=($(( (t1 - t0) / 1000000 )))
  "${CTR[@]}" task kill -s KILL wisp-exp-app >/dev/null
  for _ in $(seq 1 100); do "${CTR[@]}" task rm wisp-exp-app >/dev/null 2>&1 && break; sleep 0.02; done
  "${CTR[@]}" container rm wisp-exp-app >/dev/null
  sleep 0.3
  echo "run $i: docker ${docker_ms[-1]} ms, ctr ${ctr_ms[-1]} ms"
done

p50() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(p50 "${docker_ms[@]}"); c=$(p50 "${ctr_ms[@]}")
echo
echo "start into a prepared namespace until the first 200, $N runs each:"
echo "  docker run --network container:…   p50 $d ms"
echo "  ctr run --with-ns network:…        p50 $c ms"
awk -v d="$d" -v c="$c" 'BEGIN { printf "  ctr / docker                       %.2f\n", c / d }'

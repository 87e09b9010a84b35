#!/usr/bin/env bash
# An experiment, not a test (issue 14, part 3): how much of a sandboxed cold
# start is the Docker API's own, and how much would starting through
# containerd directly save? It starts the same image into a prepared
# network namespace both ways, N times each, alternating, and times each
# start until the first HTTP 200 at the namespace's address:
#
#   docker run:   docker run -d --network container:<holder> IMAGE
#   ctr run:      ctr run -d --with-ns network:/proc/<holder pid>/ns/net IMAGE
#                 against the engine's own containerd (its socket under
#                 /var/run/docker/containerd), in a namespace of its own, on
#                 containerd's overlayfs snapshotter (the engine here uses
#                 fuse-overlayfs for its layers)
#   docker start: the container created ahead (not timed), then
#                 docker start: Wisp's path, a spare in a sandbox
#   ctr start:    ctr container create ahead (not timed), then
#                 ctr task start -d
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

docker_ms=(); ctr_ms=(); dstart_ms=(); cstart_ms=()
ctr_rm() {
  "${CTR[@]}" task kill -s KILL wisp-exp-app >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do "${CTR[@]}" task rm wisp-exp-app >/dev/null 2>&1 && break; sleep 0.02; done
  "${CTR[@]}" container rm wisp-exp-app >/dev/null
}
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
  ctr_rm
  sleep 0.3

  docker create --name wisp-exp-app --network container:wisp-exp-holder "$IMAGE" >/dev/null
  sleep 0.2
  t0=$(now)
  docker start wisp-exp-app >/dev/null
  wait200
  t1=$(now)
  dstart_ms+=($(( (t1 - t0) / 1000000 )))
  docker rm -f wisp-exp-app >/dev/null
  sleep 0.3

  "${CTR[@]}" container create --with-ns "network:/proc/$pid/ns/net" "$ref" wisp-exp-app >/dev/null
  sleep 0.2
  t0=$(now)
  "${CTR[@]}" task start -d wisp-exp-app >/dev/null 2>&1
  wait200
  t1=$(now)
  cstart_ms+=($(( (t1 - t0) / 1000000 )))
  ctr_rm
  sleep 0.3
  echo "run $i: docker run ${docker_ms[-1]} ms, ctr run ${ctr_ms[-1]} ms, docker start ${dstart_ms[-1]} ms, ctr task start ${cstart_ms[-1]} ms"
done

p50() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(p50 "${docker_ms[@]}"); c=$(p50 "${ctr_ms[@]}"); ds=$(p50 "${dstart_ms[@]}"); cs=$(p50 "${cstart_ms[@]}")
echo
echo "start into a prepared namespace until the first 200, $N runs each (p50):"
echo "  docker run --network container:…   $d ms"
echo "  ctr run --with-ns network:…        $c ms"
echo "  docker start (created ahead)       $ds ms"
echo "  ctr task start (created ahead)     $cs ms"
awk -v d="$d" -v c="$c" -v ds="$ds" -v cs="$cs" 'BEGIN { printf "  ctr run / docker run               %.2f\n  ctr task start / docker start      %.2f\n", c / d, cs / ds }'

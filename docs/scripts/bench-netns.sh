#!/usr/bin/env bash
# Multi-host training on one machine: the coordinator on a bridge in the root namespace, each worker process in a
# network namespace of its own behind a veth pair whose two ends are rate-limited with tbf (both directions), gRPC
# only. Prints local mode and the distributed run for each rate, rounds alternating. Root only; every name starts
# with "dtbn", addresses are inside 10.213.78.0/24, and everything is removed at exit, also on failure.
#   docs/scripts/bench-netns.sh CONFIG EPOCHS "1gbit 10gbit" [rounds]
#   EXTRA="--wire bf16" docs/scripts/bench-netns.sh CONFIG EPOCHS "1gbit" 3   (EXTRA: more bench-distributed flags)
set -euo pipefail
config=${1:-examples/lecture-mnist.json}
epochs=${2:-40}
rates=${3:-"1gbit 10gbit"}
rounds=${4:-2}
workers=2
prefix=dtbn
subnet=10.213.78
disttrain=(dotnet coordinator/bin/Release/net10.0/disttrain.dll)
worker=worker/bin/Release/net10.0/DistTrain.Worker.dll
pids=()
# Addresses off loopback need a shared token; one per run, inherited by the coordinator and the workers.
DISTTRAIN_TOKEN=$(head -c 24 /dev/urandom | base64)
export DISTTRAIN_TOKEN

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for slot in $(seq 0 $((workers - 1))); do
    ip netns del "$prefix-ns$slot" 2>/dev/null || true
    ip link del "${prefix}v$slot" 2>/dev/null || true
  done
  ip link del "${prefix}br" 2>/dev/null || true
}
trap cleanup EXIT
cleanup

ip link add "${prefix}br" type bridge
ip addr add "$subnet.1/24" dev "${prefix}br"
ip link set "${prefix}br" up
for slot in $(seq 0 $((workers - 1))); do
  ip netns add "$prefix-ns$slot"
  ip link add "${prefix}v$slot" type veth peer name "${prefix}p$slot"
  ip link set "${prefix}p$slot" netns "$prefix-ns$slot"
  ip link set "${prefix}v$slot" master "${prefix}br"
  ip link set "${prefix}v$slot" up
  ip netns exec "$prefix-ns$slot" ip addr add "$subnet.$((10 + slot))/24" dev "${prefix}p$slot"
  ip netns exec "$prefix-ns$slot" ip link set "${prefix}p$slot" up
  ip netns exec "$prefix-ns$slot" ip link set lo up
done

limit() { # rate: both ends of every worker's link
  local rate=$1 burst
  case $rate in *10gbit) burst=4mb ;; *) burst=1mb ;; esac
  for slot in $(seq 0 $((workers - 1))); do
    tc qdisc replace dev "${prefix}v$slot" root tbf rate "$rate" burst "$burst" latency 50ms
    ip netns exec "$prefix-ns$slot" tc qdisc replace dev "${prefix}p$slot" root tbf rate "$rate" burst "$burst" latency 50ms
  done
}

local_run() {
  "${disttrain[@]}" bench --skip-gemm --skip-conv --config "$config" --epochs "$epochs" --threads 2 2>&1 | grep -E '^train' | head -1
}

distributed_run() {
  local port=$((20000 + RANDOM % 20000)) log
  log=$(mktemp)
  "${disttrain[@]}" bench-distributed --no-dashboard --config "$config" --epochs "$epochs" \
    --listen "http://$subnet.1:$port" --expect-workers "$workers" --shared-memory off ${EXTRA:-} > "$log" 2>&1 &
  local coordinator=$!
  pids=("$coordinator")
  sleep 2
  for slot in $(seq 0 $((workers - 1))); do
    ip netns exec "$prefix-ns$slot" dotnet "$worker" --coordinator "http://$subnet.1:$port" \
      --host "$subnet.$((10 + slot))" --port 0 --threads 1 --cache-dir "/tmp/$prefix-cache" > /dev/null 2>&1 &
    pids+=("$!")
  done
  wait "$coordinator" || { cat "$log"; return 1; }
  grep -E 'samples/s|step time|per step|network wait' "$log" | tr '\n' ' '
  echo -n "TCP step links: $(grep -c 'over the TCP step link' "$log" || true)"
  echo
  rm -f "$log"
}

for rate in $rates; do
  limit "$rate"
  for r in $(seq 1 "$rounds"); do
    echo "$rate round $r local: $(local_run)"
    echo "$rate round $r gRPC:  $(distributed_run)"
  done
done

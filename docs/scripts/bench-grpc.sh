#!/usr/bin/env bash
# Distributed training over gRPC only on 127.0.0.1 (2 worker processes × 1 thread + the coordinator) against local
# mode with 2 threads and PyTorch DDP (gloo, 2 processes × 1 thread), rounds alternating, on the same cores. Prints
# one line per run.
#   docs/scripts/bench-grpc.sh CONFIG EPOCHS ROUNDS "DDP ARGS" [extra bench-distributed flags...]
#   docs/scripts/bench-grpc.sh examples/fashion-mnist.json 4 5 "--hidden 256,128 --batch 128 --lr 0.001"
#   VARIANTS="--wire float32|--wire bf16|--weights-transfer push" docs/scripts/bench-grpc.sh examples/fashion-mnist.json 4 5 "--hidden 256,128 --batch 128 --lr 0.001"
# VARIANTS ('|'-separated, default: none) are the extra bench-distributed flags of each round's gRPC runs.
set -euo pipefail
config=${1:-examples/lecture-mnist.json}
epochs=${2:-10}
rounds=${3:-5}
ddp=${4:-"--hidden 128 --batch 10000"}
shift 4 || true
extra=("$@")
disttrain=(dotnet coordinator/bin/Release/net10.0/disttrain.dll)
worker=worker/bin/Release/net10.0/DistTrain.Worker.dll
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

local_run() {
  "${disttrain[@]}" bench --skip-gemm --skip-conv --config "$config" --epochs "$epochs" --threads 2 2>&1 | grep -E '^train' | head -1
}

grpc_run() {
  local variant=$1 port=$((20000 + RANDOM % 20000)) log
  log=$(mktemp)
  "${disttrain[@]}" bench-distributed --no-dashboard --config "$config" --epochs "$epochs" \
    --listen "http://127.0.0.1:$port" --expect-workers 2 --shared-memory off $variant "${extra[@]}" > "$log" 2>&1 &
  local coordinator=$!
  pids=("$coordinator")
  for w in 1 2; do
    dotnet "$worker" --coordinator "http://127.0.0.1:$port" --port 0 --threads 1 --shared-memory false \
      --register-timeout 30 > /dev/null 2>&1 &
    pids+=("$!")
  done
  wait "$coordinator" || { cat "$log"; return 1; }
  grep -E 'samples/s|step time|per step|network|communication|early' "$log" | tr '\n' ' '
  echo -n "TCP step links: $(grep -c 'over the TCP step link' "$log" || true)"
  echo
  rm -f "$log"
  wait || true
}

ddp_run() {
  ../shared/anchors/run-reference.sh pytorch_ddp.py --world 2 --threads 1 --epochs "$epochs" $ddp 2>&1 | grep RESULT
}

for r in $(seq 1 "$rounds"); do
  echo "round $r local: $(local_run)"
  IFS='|' read -r -a variants <<< "${VARIANTS:-}"
  [ ${#variants[@]} -eq 0 ] && variants=("")
  for variant in "${variants[@]}"; do echo "round $r gRPC [$variant]: $(grpc_run "$variant")"; done
  echo "round $r DDP:   $(ddp_run)"
done

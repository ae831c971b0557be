#!/usr/bin/env bash
# fashion-cnn against PyTorch (oneDNN) on the same cores, rounds alternating, then batch 512 once each, then the
# distributed efficiency over gRPC (coordinator + 2 worker processes × 1 thread, --shared-memory off) against local
# mode with 2 threads. Run from the repository root after `dotnet build -c Release`, with nothing else running.
#   docs/scripts/bench-cnn.sh [rounds] [distributed-rounds]
set -euo pipefail
rounds=${1:-5}
dist_rounds=${2:-2}
disttrain=(dotnet coordinator/bin/Release/net10.0/disttrain.dll)
reference=../shared/anchors/run-reference.sh
ours() { "${disttrain[@]}" bench --skip-gemm --skip-conv --config examples/fashion-cnn.json --epochs 2 --threads 2 2>&1 | grep -E '^train|managed bytes' | head -1; }
torch() { "$reference" pytorch_cnn.py --epochs 2 --batch "$1" --threads 2 --quiet 2>&1 | grep RESULT; }
for r in $(seq 1 "$rounds"); do
  echo "round $r ours:  $(DISTTRAIN_TRAINING__BATCHSIZE=128 ours)"
  echo "round $r torch: $(torch 128)"
done
echo "batch 512 ours:  $(DISTTRAIN_TRAINING__BATCHSIZE=512 DISTTRAIN_TRAINING__SHARDSIZE=128 ours)"
echo "batch 512 torch: $(torch 512)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for r in $(seq 1 "$dist_rounds"); do
  echo "distributed round $r local: $(ours)"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${disttrain[@]}" bench-distributed --no-dashboard --config examples/fashion-cnn.json --epochs 2 \
    --listen "http://127.0.0.1:$port" --expect-workers 2 --shared-memory off > /tmp/bench-cnn-dist.log 2>&1 &
  coordinator=$!
  pids=("$coordinator")
  sleep 2
  for w in 1 2; do
    dotnet worker/bin/Release/net10.0/DistTrain.Worker.dll --coordinator "http://127.0.0.1:$port" --threads 1 --port 0 > /dev/null 2>&1 &
    pids+=("$!")
  done
  wait "$coordinator"
  echo "distributed round $r gRPC: $(grep -E 'samples/s|bytes|slowest' /tmp/bench-cnn-dist.log | tr '\n' ' ')"
done

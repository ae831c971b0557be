#!/usr/bin/python3
"""Median GFLOP/s of numpy matmul (OpenBLAS) on all six training shapes of the lecture model, operands laid out as
the layers hold them. Run in the reference environment:
    OPENBLAS_CORETYPE=SkylakeX LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 docs/scripts/openblas_shapes.py THREADS
"""
import os, sys, time
t = sys.argv[1] if len(sys.argv) > 1 else "2"
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"): os.environ[v] = t
import numpy as np
rng = np.random.default_rng(0)
def bench(fn, flops):
    fn(); fn(); ts = []; t0s = time.perf_counter()
    while len(ts) < 15 or time.perf_counter() - t0s < 1.0:
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    ts.sort(); return flops / ts[len(ts)//2] / 1e9
# (name, M, K, N, transA, transB) C = op(A) @ op(B), shapes as our layers hold them
shapes = [
 ("fwd hidden  X·Wt", 10000, 784, 128, False, True),
 ("wgrad hidden dYt·X", 128, 10000, 784, True, False),
 ("dgrad hidden dY·W", 10000, 128, 784, False, False),
 ("fwd output  H·Wt", 10000, 128, 10, False, True),
 ("wgrad output dYt·H", 10, 10000, 128, True, False),
 ("dgrad output dY·W", 10000, 10, 128, False, False),
]
for name, M, K, N, ta, tb in shapes:
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    A = a.T if ta else a; B = b.T if tb else b
    c = np.empty((M, N), dtype=np.float32)
    print("%-22s m=%-6d n=%-5d k=%-6d threads=%s  %7.1f GFLOP/s (median)" % (name, M, N, K, t, bench(lambda: np.matmul(A, B, out=c), 2.0*M*N*K)))

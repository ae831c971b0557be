// Row-major single-precision matrix products in the three forms a Linear layer needs; no transposes are
// materialised. Every output element is reduced over k in one fixed order, whatever the thread count, so results
// are bit-identical for any degree of parallelism (parallelism is over output tiles only).
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using static DistTrain.Core.Kernels.GemmMicroKernels;

namespace DistTrain.Core.Kernels;

/// <summary>
/// Goto/BLIS-style GEMM: B is packed into [kc][NR] panels (a group of k-blocks at a time), A into [kc][MR] panels,
/// and a register-blocked FMA micro-kernel (<see cref="GemmMicroKernels"/>) computes each MR×NR tile of C.
/// </summary>
public static unsafe class Gemm
{
    /// <summary>Deepest k-block: a [KC][32] B micro-panel (32 KiB) stays in L1 while A panels stream past it.</summary>
    internal const int KCMax = 256;

    /// <summary>Rows of A packed at once ([MC][KC] = 128 KiB, L2-resident); also bounds the C block kept hot in L2.</summary>
    internal const int MC = 128;

    /// <summary>Floats of packed B per thread (1 MiB, about the L2 size); bounds NC and how many k-blocks share C's trip.</summary>
    internal const int PackedBFloats = 256 * 1024;

    /// <summary>Minimum multiply-adds per thread before another thread is worth its start-up cost.</summary>
    private const long MinWorkPerThread = 1 << 21;

    [ThreadStatic] private static float[]? t_packBuffer;

    /// <summary>C[m×n] (+)= A[m×k] · B[n×k]ᵀ  (forward: Y = X·Wᵀ).</summary>
    public static void MultiplyABt(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool accumulate, int threads = 1)
    {
        Check(a.Length, b.Length, c.Length, m, n, k, threads);
        fixed (float* pa = a, pb = b, pc = c)
            Run(new Operands(new GemmOperand(pa, k, true), new GemmOperand(pb, k, true), pc, n, k, accumulate), m, n, threads);
    }

    /// <summary>C[m×n] (+)= A[k×m]ᵀ · B[k×n]  (weight gradient: dW = dYᵀ·X).</summary>
    public static void MultiplyAtB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool accumulate, int threads = 1)
    {
        Check(a.Length, b.Length, c.Length, m, n, k, threads);
        fixed (float* pa = a, pb = b, pc = c)
            Run(new Operands(new GemmOperand(pa, m, false), new GemmOperand(pb, n, false), pc, n, k, accumulate), m, n, threads);
    }

    /// <summary>C[m×n] (+)= A[m×k] · B[k×n]  (input gradient: dX = dY·W).</summary>
    public static void MultiplyAB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool accumulate, int threads = 1)
    {
        Check(a.Length, b.Length, c.Length, m, n, k, threads);
        fixed (float* pa = a, pb = b, pc = c)
            Run(new Operands(new GemmOperand(pa, k, true), new GemmOperand(pb, n, false), pc, n, k, accumulate), m, n, threads);
    }

    /// <summary>
    /// C[m×n] (+)= A·Bᵀ where row i of A is row <paramref name="aRows"/>[i] of the byte matrix <paramref name="a"/>
    /// (k wide), each byte read as byte / divisor: a first layer's forward pass on a batch of images, read where the
    /// dataset holds them. The packed panels hold the same floats as a gathered float copy's, so the result has
    /// <see cref="MultiplyABt"/>'s bits on that copy.
    /// </summary>
    public static void MultiplyGatheredABt(ReadOnlySpan<byte> a, ReadOnlySpan<int> aRows, ByteDivisor divisor,
        ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate, int threads = 1)
    {
        Check(m * (long)k, b.Length, c.Length, m, n, k, threads);
        CheckRows(aRows, m, a.Length, k, nameof(aRows));
        fixed (byte* pa = a)
        fixed (int* rows = aRows)
        fixed (float* pb = b, pc = c)
            Run(new Operands(new GemmOperand(pa, rows, divisor, k, true), new GemmOperand(pb, k, true), pc, n, k, accumulate), m, n, threads);
    }

    /// <summary>
    /// C[m×n] (+)= Aᵀ·B where row p of B is row <paramref name="bRows"/>[p] of the byte matrix <paramref name="b"/>
    /// (n wide), each byte read as byte / divisor: a first layer's weight gradient on a batch of images. The bits of
    /// <see cref="MultiplyAtB"/> on a gathered float copy.
    /// </summary>
    public static void MultiplyAtGatheredB(ReadOnlySpan<float> a, ReadOnlySpan<byte> b, ReadOnlySpan<int> bRows,
        ByteDivisor divisor, Span<float> c, int m, int n, int k, bool accumulate, int threads = 1)
    {
        Check(a.Length, n * (long)k, c.Length, m, n, k, threads);
        CheckRows(bRows, k, b.Length, n, nameof(bRows));
        fixed (float* pa = a, pc = c)
        fixed (byte* pb = b)
        fixed (int* rows = bRows)
            Run(new Operands(new GemmOperand(pa, m, false), new GemmOperand(pb, rows, divisor, n, false), pc, n, k, accumulate), m, n, threads);
    }

    /// <summary>The two operands, C and the depth of one product.</summary>
    private readonly struct Operands(GemmOperand a, GemmOperand b, float* c, int ldc, int k, bool accumulate)
    {
        public readonly GemmOperand A = a, B = b;
        public readonly float* C = c;
        public readonly int Ldc = ldc, K = k;
        public readonly bool Accumulate = accumulate;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run(in Operands op, int m, int n, int threads)
    {
        if (m == 0 || n == 0) return;
        // Split the dimension whose other operand is cheaper to pack twice: rows share B, columns share A.
        bool splitRows = m >= n;
        int units = splitRows ? (m + MR - 1) / MR : (n + NR - 1) / NR;
        long work = (long)m * n * op.K;
        int parts = (int)Math.Min(Math.Min(Math.Min(threads, units), GemmWorkers.MaxHelpers + 1),
            Math.Max(1, work / MinWorkPerThread));
        int rowBlocks = 0;
        if (parts <= 1 || !Monitor.TryEnter(GemmWorkers.Gate))
        {
            Compute(op, 0, m, 0, n, ref rowBlocks, sharedRows: false);
            return;
        }
        try
        {
            s_job.Set(op, m, n, parts, units, splitRows, splitRows && SinglePhase(n, op.K));
            GemmWorkers.Run(s_job, parts - 1);
        }
        finally
        {
            Monitor.Exit(GemmWorkers.Gate);
        }
    }

    /// <summary>True when all of B fits one packing (one column block, one k-group): then each thread packs it once
    /// and the row blocks can be handed out one at a time.</summary>
    private static bool SinglePhase(int n, int k)
    {
        if (k == 0) return false;
        int kBlocks = (k + KCMax - 1) / KCMax, kcStep = (k + kBlocks - 1) / kBlocks, nr = TileWidth(n);
        int ncMax = PackedBFloats / KCMax / nr * nr, ncPadded = (n + nr - 1) / nr * nr;
        return n <= ncMax && Math.Max(1, PackedBFloats / (kcStep * ncPadded)) * kcStep >= k;
    }

    private static readonly ParallelJob s_job = new();

    /// <summary>
    /// The pieces of one parallel product, claimed first come, first served, so a thread that the OS runs late gets
    /// fewer of them instead of delaying the rest. Tile boundaries never move with the partition, so neither do the
    /// bits. Reused under <see cref="GemmWorkers.Gate"/>, so a parallel call allocates nothing.
    /// </summary>
    private sealed class ParallelJob : GemmWork
    {
        private Operands _op;
        private int _m, _n, _slabs, _units, _nextSlab, _nextRowBlock;
        private bool _splitRows, _sharedRows;

        public void Set(in Operands op, int m, int n, int parts, int units, bool splitRows, bool sharedRows)
        {
            (_op, _m, _n, _units, _splitRows, _sharedRows) = (op, m, n, units, splitRows, sharedRows);
            // One slab per thread: thinner column slabs measured ~10% slower on the weight gradient (each slab
            // repacks all of A, and its packed B gets narrower), which costs more than a late thread does.
            _slabs = parts;
            _nextSlab = 0;
            _nextRowBlock = 0;
        }

        public override void Participate()
        {
            if (_sharedRows)
            {
                Compute(_op, 0, _m, 0, _n, ref _nextRowBlock, sharedRows: true);
                return;
            }
            for (int s; (s = Interlocked.Increment(ref _nextSlab) - 1) < _slabs;)
            {
                int first = (int)((long)_units * s / _slabs), last = (int)((long)_units * (s + 1) / _slabs);
                int rowBlocks = 0;
                if (_splitRows) Compute(_op, first * MR, Math.Min(_m, last * MR), 0, _n, ref rowBlocks, false);
                else Compute(_op, 0, _m, first * NR, Math.Min(_n, last * NR), ref rowBlocks, false);
            }
        }
    }

    /// <summary>
    /// C[r0..r1)×[c0..c1) on the calling thread, with its own pack buffers. MC-row blocks are taken in order, or,
    /// with <paramref name="sharedRows"/> (single phase only), claimed from a counter the threads share.
    /// </summary>
    private static void Compute(in Operands op, int r0, int r1, int c0, int c1, ref int rowBlock, bool sharedRows)
    {
        int k = op.K, nr = TileWidth(c1 - c0);
        if (k == 0)
        {
            if (!op.Accumulate)
                for (int i = r0; i < r1; i++) new Span<float>(op.C + (nint)i * op.Ldc + c0, c1 - c0).Clear();
            return;
        }
        // A helper that joins after the last row block went would pack B for nothing while the caller waits on it.
        if (sharedRows && r0 + (long)MC * Volatile.Read(ref rowBlock) >= r1) return;
        // k-blocks depend on k alone (equal sizes, the last one shorter): the reduction order is fixed by k.
        int kBlocks = (k + KCMax - 1) / KCMax, kcStep = (k + kBlocks - 1) / kBlocks;
        float* packA = PackBuffer(), packB = packA + MC * KCMax;
        float* scratch = stackalloc float[MR * 32];
        GemmPrefetch prefetchA = default, prefetchB = default;
        int ncMax = PackedBFloats / KCMax / nr * nr;
        for (int jc = c0; jc < c1; jc += ncMax)
        {
            int nc = Math.Min(ncMax, c1 - jc), ncPadded = (nc + nr - 1) / nr * nr;
            // Pack as many k-blocks of B as fit, so each C block below takes one trip through cache for all of them.
            int groupDepth = Math.Max(1, PackedBFloats / (kcStep * ncPadded)) * kcStep;
            for (int pg = 0; pg < k; pg += groupDepth)
            {
                int groupEnd = Math.Min(k, pg + groupDepth);
                float* bp = packB;
                for (int pc = pg; pc < groupEnd; pc += kcStep)
                {
                    int kc = Math.Min(kcStep, k - pc);
                    GemmPacking.Pack(op.B, jc, pc, nc, kc, nr, bp);
                    bp += kc * ncPadded;
                }
                if (!sharedRows) rowBlock = 0;
                for (int ic = NextRows(ref rowBlock, sharedRows, r0), nextIc; ic < r1; ic = nextIc)
                {
                    // Claimed one ahead, so the prefetcher knows which A block this thread packs next.
                    nextIc = NextRows(ref rowBlock, sharedRows, r0);
                    int mc = Math.Min(MC, r1 - ic);
                    bp = packB;
                    for (int pc = pg; pc < groupEnd; pc += kcStep)
                    {
                        int kc = Math.Min(kcStep, k - pc);
                        GemmPacking.Pack(op.A, ic, pc, mc, kc, MR, packA);
                        bool overwrite = !op.Accumulate && pc == 0;
                        float* cBlock = op.C + (nint)ic * op.Ldc + jc;
                        int tiles = (nc + nr - 1) / nr * ((mc + MR - 1) / MR);
                        StartPrefetch(ref prefetchA, ref prefetchB, op, r0, r1, ic, nextIc, pc, pg, groupEnd, groupDepth,
                            kcStep, jc, nc, tiles);
                        for (int jr = 0; jr < nc; jr += nr)
                            for (int ir = 0; ir < mc; ir += MR, prefetchA.Step(), prefetchB.Step())
                                TileOrEdge(kc, packA + ir * kc, bp + jr * kc, cBlock + (nint)ir * op.Ldc + jr, op.Ldc,
                                    Math.Min(MR, mc - ir), Math.Min(nr, nc - jr), nr, overwrite, scratch);
                        bp += kc * ncPadded;
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int NextRows(ref int rowBlock, bool shared, int r0) =>
        r0 + MC * (shared ? Interlocked.Increment(ref rowBlock) - 1 : rowBlock++);

    /// <summary>Aims the prefetchers at what gets packed next: the next A block and, on a group's last C block,
    /// the matching k-block of the next B group.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StartPrefetch(ref GemmPrefetch nextA, ref GemmPrefetch nextB, in Operands op, int r0, int r1,
        int ic, int nextIc, int pc, int pg, int groupEnd, int groupDepth, int kcStep, int jc, int nc, int tiles)
    {
        int k = op.K, next = pc + kcStep;
        if (next < groupEnd)
            nextA.Start(op.A, ic, next, Math.Min(MC, r1 - ic), Math.Min(kcStep, k - next), tiles);
        else if (nextIc < r1)
            nextA.Start(op.A, nextIc, pg, Math.Min(MC, r1 - nextIc), Math.Min(kcStep, k - pg), tiles);
        else if (groupEnd < k)
            nextA.Start(op.A, r0, groupEnd, Math.Min(MC, r1 - r0), Math.Min(kcStep, k - groupEnd), tiles);
        else nextA.Stop();
        int nextGroupBlock = pc + groupDepth;
        if (nextIc >= r1 && nextGroupBlock < k)
            nextB.Start(op.B, jc, nextGroupBlock, nc, Math.Min(kcStep, k - nextGroupBlock), tiles);
        else nextB.Stop();
    }

    /// <summary>Full tiles go straight to C; partial ones are computed whole into scratch (the panels are
    /// zero-padded) and only the valid rows×cols merged, with the same single rounding of the add as a full tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TileOrEdge(int kc, float* a, float* b, float* c, int ldc, int rows, int cols, int nr,
        bool overwrite, float* scratch)
    {
        if (rows == MR && cols == nr)
        {
            Tile(nr, kc, a, b, c, ldc, overwrite);
            return;
        }
        Tile(nr, kc, a, b, scratch, nr, overwrite: true);
        for (int r = 0; r < rows; r++)
        {
            float* cr = c + (nint)r * ldc, sr = scratch + r * nr;
            for (int j = 0; j < cols; j++) cr[j] = overwrite ? sr[j] : cr[j] + sr[j];
        }
    }

    internal static void EnsurePackBuffer() => PackBuffer();

    /// <summary>This thread's pack buffers, allocated once (pinned, so the pointer stays valid) and 64-byte aligned.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float* PackBuffer()
    {
        float[] buffer = t_packBuffer ??= GC.AllocateUninitializedArray<float>(MC * KCMax + PackedBFloats + 16, pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref buffer[0]);
        return (float*)((address + 63) & ~(nint)63);
    }

    private static void Check(long aLength, long bLength, int cLength, int m, int n, int k, int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (aLength < (long)m * k) throw new ArgumentException($"A has {aLength} elements, needs m·k = {(long)m * k}", "a");
        if (bLength < (long)n * k) throw new ArgumentException($"B has {bLength} elements, needs n·k = {(long)n * k}", "b");
        if (cLength < (long)m * n) throw new ArgumentException($"C has {cLength} elements, needs m·n = {(long)m * n}", "c");
    }

    /// <summary>The first <paramref name="count"/> row numbers, each a whole row of a <paramref name="width"/>-wide
    /// matrix of <paramref name="length"/> elements.</summary>
    private static void CheckRows(ReadOnlySpan<int> rows, int count, int length, int width, string name)
    {
        if (rows.Length < count) throw new ArgumentException($"{rows.Length} row numbers, needs {count}", name);
        if (count == 0 || width == 0) return;
        int available = length / width, lowest = TensorPrimitives.Min(rows[..count]), highest = TensorPrimitives.Max(rows[..count]);
        if (lowest < 0 || highest >= available)
            throw new ArgumentOutOfRangeException(name, $"row numbers {lowest}..{highest}, the matrix has rows 0..{available - 1}");
    }
}

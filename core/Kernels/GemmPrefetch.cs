// Software prefetch of the next block's source while the micro-kernels work on the current one, so the packing
// of a large streamed operand (X in X·Wᵀ, X in dYᵀ·X) overlaps with arithmetic instead of waiting on DRAM.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Core.Kernels;

/// <summary>Walks a 2-D source region one 64-byte line at a time, a fixed share per micro-tile. Hints only:
/// it never changes a result, and a region that is too large simply wraps up unfinished.</summary>
internal unsafe struct GemmPrefetch
{
    private float* _line;
    private nint _stride;
    private int _linesLeft, _chunksPerLine, _chunk, _perStep;

    /// <summary>Same addressing as <see cref="GemmPacking.Pack"/>: count lines × kc depth, spread over steps tiles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Start(float* source, int ld, bool kContiguous, int count, int kc, int steps)
    {
        int lines = kContiguous ? count : kc, lineFloats = kContiguous ? kc : count;
        _line = source;
        _stride = ld;
        _linesLeft = lines;
        _chunksPerLine = (lineFloats + 15) / 16;
        _chunk = 0;
        _perStep = (int)(((long)lines * _chunksPerLine + steps - 1) / Math.Max(1, steps));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Stop() => _linesLeft = 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Step()
    {
        if (!Sse.IsSupported) return;
        for (int i = 0; i < _perStep && _linesLeft > 0; i++)
        {
            Sse.Prefetch1(_line + _chunk * 16);
            if (++_chunk == _chunksPerLine)
            {
                _chunk = 0;
                _line += _stride;
                _linesLeft--;
            }
        }
    }
}

// Software prefetch of the next block's source while the micro-kernels work on the current one, so the packing
// of a large streamed operand (X in X·Wᵀ, X in dYᵀ·X) overlaps with arithmetic instead of waiting on DRAM.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace DistTrain.Core.Kernels;

/// <summary>Walks a 2-D source region one 64-byte line at a time, a fixed share per micro-tile. Hints only:
/// it never changes a result, and a region that is too large simply wraps up unfinished.</summary>
internal unsafe struct GemmPrefetch
{
    private byte* _line;
    private nint _stride;
    private GemmOperand _gathered;
    private int _row, _offset, _linesLeft, _chunksPerLine, _chunk, _perStep;

    /// <summary>The region <see cref="GemmPacking.Pack(in GemmOperand, int, int, int, int, int, float*)"/> packs from
    /// (line0, depth0): count lines × kc depth, spread over steps tiles; for gathered byte rows, row by row through the
    /// row table.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Start(in GemmOperand source, int line0, int depth0, int count, int kc, int steps)
    {
        int lines = source.KContiguous ? count : kc, lineElements = source.KContiguous ? kc : count;
        if (source.IsBytes)
        {
            _gathered = source;
            (_row, _offset) = source.KContiguous ? (line0, depth0) : (depth0, line0);
            _line = source.ByteRow(_row) + _offset;
            _stride = 0;
            _chunksPerLine = (lineElements + 63) / 64;
        }
        else
        {
            _gathered = default;
            _line = (byte*)source.At(line0, depth0);
            _stride = (nint)source.Ld * sizeof(float);
            _chunksPerLine = (lineElements + 15) / 16;
        }
        _linesLeft = lines;
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
            Sse.Prefetch1(_line + _chunk * 64);
            if (++_chunk == _chunksPerLine)
            {
                _chunk = 0;
                if (--_linesLeft == 0) break;
                _line = _gathered.IsBytes ? _gathered.ByteRow(++_row) + _offset : _line + _stride;
            }
        }
    }
}

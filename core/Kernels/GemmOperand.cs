// Where one GEMM operand's elements live: a float32 matrix (row-major, leading dimension ld), or rows of a byte
// matrix picked by a row table and read through a divisor (a first layer's batch, straight from an image dataset:
// no copy of the batch is made, and the packing widens and divides what it packs, to the same floats).
using System.Runtime.CompilerServices;

namespace DistTrain.Core.Kernels;

/// <summary>
/// Line i (a row of A or a column of B) at depth p: with <see cref="KContiguous"/> element p of storage row i,
/// otherwise element i of storage row p. Storage row r is at <c>start + r·ld</c> (floats) or, for gathered bytes,
/// at <c>bytes + rows[r]·ld</c>, each byte b read as b / divisor.
/// </summary>
internal readonly unsafe struct GemmOperand
{
    private readonly float* _start;
    private readonly byte* _bytes;
    private readonly int* _rows;
    public readonly ByteDivisor Divisor;
    public readonly int Ld;
    public readonly bool KContiguous;

    public GemmOperand(float* start, int ld, bool kContiguous)
    {
        _start = start;
        Divisor = ByteDivisor.One;
        Ld = ld;
        KContiguous = kContiguous;
    }

    public GemmOperand(byte* bytes, int* rows, ByteDivisor divisor, int ld, bool kContiguous)
    {
        _bytes = bytes;
        _rows = rows;
        Divisor = divisor;
        Ld = ld;
        KContiguous = kContiguous;
    }

    public bool IsBytes => _bytes != null;

    /// <summary>Where (line, depth) of a float operand lives (what the strided packers and prefetchers start from).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* At(int line, int depth) => KContiguous ? _start + (nint)line * Ld + depth : _start + (nint)depth * Ld + line;

    /// <summary>Storage row <paramref name="r"/> of a byte operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* ByteRow(int r) => _bytes + (nint)_rows[r] * Ld;
}

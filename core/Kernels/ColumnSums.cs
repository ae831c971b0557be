// Sums down the columns of a row-major matrix: a layer's bias gradient (over every row or output pixel of a batch)
// and global average pooling (over the pixels of one channels-last image) are both this.
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Kernels;

internal static class ColumnSums
{
    /// <summary>Rows of a block, and blocks of a group: the three levels of every column's sum.</summary>
    internal const int BlockRows = 32, GroupBlocks = 32;

    /// <summary>
    /// sums[j] = Σ_i values[i·n + j] in three levels, whatever the path: rows in blocks of <see cref="BlockRows"/>
    /// summed from zero in ascending order, blocks in groups of <see cref="GroupBlocks"/> summed from zero, groups into
    /// the total — so a column of thousands of nearly cancelling gradients (a last layer's bias) is not one long
    /// rounding chain. Vectorised over j, up to four vectors a pass; a last partial vector overlaps the one before it
    /// and recomputes those columns in the same order, hence the same bits.
    /// </summary>
    public static void Compute(ReadOnlySpan<float> values, int n, Span<float> sums)
    {
        int rows = values.Length / n, j = 0;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            const int W = 16;
            for (; j + 4 * W <= n; j += 4 * W)
            {
                Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
                for (int group = 0; group < rows; group += BlockRows * GroupBlocks)
                {
                    Vector512<float> g0 = default, g1 = default, g2 = default, g3 = default;
                    for (int block = group, groupEnd = Math.Min(rows, group + BlockRows * GroupBlocks); block < groupEnd; block += BlockRows)
                    {
                        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
                        for (int i = block, end = Math.Min(groupEnd, block + BlockRows); i < end; i++)
                        {
                            ReadOnlySpan<float> row = values.Slice(i * n + j, 4 * W);
                            b0 += Vector512.Create(row);
                            b1 += Vector512.Create(row[W..]);
                            b2 += Vector512.Create(row[(2 * W)..]);
                            b3 += Vector512.Create(row[(3 * W)..]);
                        }
                        (g0, g1, g2, g3) = (g0 + b0, g1 + b1, g2 + b2, g3 + b3);
                    }
                    (t0, t1, t2, t3) = (t0 + g0, t1 + g1, t2 + g2, t3 + g3);
                }
                t0.CopyTo(sums[j..]);
                t1.CopyTo(sums[(j + W)..]);
                t2.CopyTo(sums[(j + 2 * W)..]);
                t3.CopyTo(sums[(j + 3 * W)..]);
            }
            for (; j < n; j += W)
            {
                int at = Math.Min(j, n - W);
                Vector512<float> total = default;
                for (int group = 0; group < rows; group += BlockRows * GroupBlocks)
                {
                    Vector512<float> part = default;
                    for (int block = group, groupEnd = Math.Min(rows, group + BlockRows * GroupBlocks); block < groupEnd; block += BlockRows)
                    {
                        Vector512<float> sum = default;
                        for (int i = block, end = Math.Min(groupEnd, block + BlockRows); i < end; i++)
                            sum += Vector512.Create(values.Slice(i * n + at, W));
                        part += sum;
                    }
                    total += part;
                }
                total.CopyTo(sums[at..]);
            }
            return;
        }
        if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            const int W = 8;
            for (; j < n; j += W)
            {
                int at = Math.Min(j, n - W);
                Vector256<float> total = default;
                for (int group = 0; group < rows; group += BlockRows * GroupBlocks)
                {
                    Vector256<float> part = default;
                    for (int block = group, groupEnd = Math.Min(rows, group + BlockRows * GroupBlocks); block < groupEnd; block += BlockRows)
                    {
                        Vector256<float> sum = default;
                        for (int i = block, end = Math.Min(groupEnd, block + BlockRows); i < end; i++)
                            sum += Vector256.Create(values.Slice(i * n + at, W));
                        part += sum;
                    }
                    total += part;
                }
                total.CopyTo(sums[at..]);
            }
            return;
        }
        for (; j < n; j++)
        {
            float total = 0;
            for (int group = 0; group < rows; group += BlockRows * GroupBlocks)
            {
                float part = 0;
                for (int block = group, groupEnd = Math.Min(rows, group + BlockRows * GroupBlocks); block < groupEnd; block += BlockRows)
                {
                    float sum = 0;
                    for (int i = block, end = Math.Min(groupEnd, block + BlockRows); i < end; i++) sum += values[i * n + j];
                    part += sum;
                }
                total += part;
            }
            sums[j] = total;
        }
    }
}

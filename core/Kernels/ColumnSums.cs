// Sums down the columns of a row-major matrix: a convolution's bias gradient (over every output pixel of a batch)
// and global average pooling (over the pixels of one channels-last image) are both this.
using System.Runtime.Intrinsics;

namespace DistTrain.Core.Kernels;

internal static class ColumnSums
{
    /// <summary>
    /// sums[j] = Σ_i values[i·n + j], i ascending, whatever the path. Vectorised over j, up to four vectors a pass so
    /// their add chains overlap; a last partial vector overlaps the one before it and recomputes those columns with
    /// the same order, hence the same bits.
    /// </summary>
    public static void Compute(ReadOnlySpan<float> values, int n, Span<float> sums)
    {
        int rows = values.Length / n, j = 0;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            const int W = 16;
            for (; j + 4 * W <= n; j += 4 * W)
            {
                Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
                for (int i = 0; i < rows; i++)
                {
                    ReadOnlySpan<float> row = values.Slice(i * n + j, 4 * W);
                    s0 += Vector512.Create(row);
                    s1 += Vector512.Create(row[W..]);
                    s2 += Vector512.Create(row[(2 * W)..]);
                    s3 += Vector512.Create(row[(3 * W)..]);
                }
                s0.CopyTo(sums[j..]);
                s1.CopyTo(sums[(j + W)..]);
                s2.CopyTo(sums[(j + 2 * W)..]);
                s3.CopyTo(sums[(j + 3 * W)..]);
            }
            for (; j < n; j += W)
            {
                int at = Math.Min(j, n - W);
                Vector512<float> sum = default;
                for (int i = 0; i < rows; i++) sum += Vector512.Create(values.Slice(i * n + at, W));
                sum.CopyTo(sums[at..]);
            }
            return;
        }
        if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            const int W = 8;
            for (; j < n; j += W)
            {
                int at = Math.Min(j, n - W);
                Vector256<float> sum = default;
                for (int i = 0; i < rows; i++) sum += Vector256.Create(values.Slice(i * n + at, W));
                sum.CopyTo(sums[at..]);
            }
            return;
        }
        for (; j < n; j++)
        {
            float sum = 0;
            for (int i = 0; i < rows; i++) sum += values[i * n + j];
            sums[j] = sum;
        }
    }
}

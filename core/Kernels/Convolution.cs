// 2-D convolution on channels-last (NHWC) batches as im2col + GEMM. A patch is laid out (kh, kw, cin), so every
// copy into the column matrix is a contiguous run of the input; the three products are the Linear layer's, with the
// patch as the feature vector. Inputs narrower than a vector per kernel row (a first layer) take the weight gradient
// straight from the input (DirectConvolution). Single-threaded on purpose: training parallelises over shards, and
// every reduction runs in an order fixed by (geometry, rows) and the instruction set, as Gemm's does.
using System.Diagnostics;

namespace DistTrain.Core.Kernels;

public static class Convolution
{
    /// <summary>
    /// Most floats of im2col columns built at once (1 MiB): samples go through in chunks of this size, so the columns
    /// are still in L2 when the GEMM reads them, and scratch stays small however large the shard.
    /// </summary>
    internal const int ColumnBudget = 256 * 1024;

    /// <summary>
    /// Chunks whose weight gradients are summed in a group buffer before the group's sum joins the total: the total
    /// takes one rounded add per group instead of per chunk, so a shard of thousands of images sums as accurately as
    /// PyTorch's blocked reductions do (one chain per chunk had twice PyTorch's float32 error after 20 steps).
    /// </summary>
    internal const int ChunksPerGroup = 16;

    /// <summary>
    /// Floats of scratch <see cref="Forward"/> and <see cref="Backward"/> need for <paramref name="rows"/> samples:
    /// 3·OutChannels·PatchLength (repacked weights, their gradient and a group's partial gradient) +
    /// chunk·OutHeight·OutWidth·PatchLength (columns),
    /// chunk = min(rows, max(1, <see cref="ColumnBudget"/> / (OutHeight·OutWidth·PatchLength))).
    /// </summary>
    public static int ScratchFloats(in ConvGeometry g, int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        CheckGeometry(g);
        long floats = 3L * g.OutChannels * g.PatchLength + (long)ChunkRows(g, rows) * g.OutHeight * g.OutWidth * g.PatchLength;
        if (floats > Array.MaxLength) throw new ArgumentException($"{floats} floats of scratch exceed an array's limit", nameof(g));
        return (int)floats;
    }

    /// <summary>y[rows][Ho][Wo][Cout] = bias + Σ_(kh,kw,cin) x[rows][ih][iw][cin] · weight[cout][cin][kh][kw] (overwrites y).</summary>
    public static void Forward(in ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
        Span<float> y, int rows, Span<float> scratch)
    {
        Check(g, rows, x.Length, weight.Length, scratch.Length);
        Exactly(bias.Length, g.OutChannels, "bias", "OutChannels");
        Need(y.Length, (long)rows * g.OutputLength, "y", "rows·OutputLength");
        int patch = g.PatchLength, pixels = g.OutHeight * g.OutWidth, cout = g.OutChannels, chunk = ChunkRows(g, rows);
        Span<float> packedWeight = scratch[..(cout * patch)], columns = scratch[(3 * cout * patch)..];
        PackWeight(g, weight, packedWeight);
        for (int first = 0; first < rows; first += chunk)
        {
            int count = Math.Min(chunk, rows - first), m = count * pixels;
            Span<float> yChunk = y.Slice(first * g.OutputLength, m * cout);
            FillRows(bias, yChunk, m);
            Im2Col.Gather(g, x.Slice(first * g.InputLength, count * g.InputLength), count, columns);
            Gemm.MultiplyABt(columns, packedWeight, yChunk, m, cout, patch, accumulate: true);
        }
    }

    /// <summary>
    /// weightGrad[cout][cin][kh][kw] and biasGrad[cout] = the gradients summed over all rows (overwritten); dx, unless
    /// empty (a first layer needs no input gradient), = the input gradient (overwritten).
    /// </summary>
    public static void Backward(in ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> dy,
        Span<float> weightGrad, Span<float> biasGrad, Span<float> dx, int rows, Span<float> scratch)
    {
        Check(g, rows, x.Length, weight.Length, scratch.Length);
        Need(dy.Length, (long)rows * g.OutputLength, "dy", "rows·OutputLength");
        Exactly(weightGrad.Length, g.WeightCount, "weightGrad", "WeightCount");
        Exactly(biasGrad.Length, g.OutChannels, "biasGrad", "OutChannels");
        if (!dx.IsEmpty) Need(dx.Length, (long)rows * g.InputLength, "dx", "rows·InputLength");
        int patch = g.PatchLength, pixels = g.OutHeight * g.OutWidth, cout = g.OutChannels, chunk = ChunkRows(g, rows);
        Span<float> packedWeight = scratch[..(cout * patch)], packedGrad = scratch.Slice(cout * patch, cout * patch);
        Span<float> group = scratch.Slice(2 * cout * patch, cout * patch), columns = scratch[(3 * cout * patch)..];
        if (!dx.IsEmpty) PackWeight(g, weight, packedWeight);
        ColumnSums.Compute(dy[..(rows * g.OutputLength)], cout, biasGrad);
        bool direct = DirectConvolution.Applies(g);
        if (direct) DirectConvolution.WeightGradient(g, x, dy, packedGrad, group, rows);
        else packedGrad.Clear();
        for (int first = 0, chunkIndex = 0; first < rows && (!direct || !dx.IsEmpty); first += chunk, chunkIndex++)
        {
            int count = Math.Min(chunk, rows - first), m = count * pixels;
            ReadOnlySpan<float> dyChunk = dy.Slice(first * g.OutputLength, m * cout);
            if (!direct)
            {
                Im2Col.Gather(g, x.Slice(first * g.InputLength, count * g.InputLength), count, columns);
                // group (+)= dYᵀ·columns, chunk after chunk; every ChunksPerGroup chunks (and at the end) the group joins
                // dW'. The sum over rows has one order for a given row count.
                bool firstOfGroup = chunkIndex % ChunksPerGroup == 0;
                Gemm.MultiplyAtB(dyChunk, columns, group, cout, patch, m, accumulate: !firstOfGroup);
                if (chunkIndex % ChunksPerGroup == ChunksPerGroup - 1 || first + count >= rows)
                    System.Numerics.Tensors.TensorPrimitives.Add(packedGrad, group, packedGrad);
            }
            if (dx.IsEmpty) continue;
            // The columns were consumed above; their buffer now takes dcol = dY·W', scattered back into dx.
            Gemm.MultiplyAB(dyChunk, packedWeight, columns, m, patch, cout, accumulate: false);
            Im2Col.Scatter(g, columns, count, dx.Slice(first * g.InputLength, count * g.InputLength));
        }
        if (direct) DirectConvolution.UnpackGradient(g, packedGrad, weightGrad);
        else UnpackWeight(g, packedGrad, weightGrad);
    }

    /// <summary>Samples per im2col chunk: fixed by the geometry and the row count alone, hence so is every sum order.</summary>
    private static int ChunkRows(in ConvGeometry g, int rows) =>
        (int)Math.Min(rows, Math.Max(1L, ColumnBudget / ((long)g.OutHeight * g.OutWidth * g.PatchLength)));

    /// <summary>Each of the first <paramref name="count"/> rows of <paramref name="target"/> = <paramref name="row"/>.</summary>
    private static unsafe void FillRows(ReadOnlySpan<float> row, Span<float> target, int count)
    {
        Debug.Assert(target.Length >= count * row.Length);
        fixed (float* source = row, first = target)
            for (int i = 0; i < count; i++) Im2Col.Copy(source, first + (nint)i * row.Length, row.Length);
    }

    /// <summary>[cout][cin][kh][kw] → [cout][kh][kw][cin], the patch order.</summary>
    private static void PackWeight(in ConvGeometry g, ReadOnlySpan<float> weight, Span<float> packed)
    {
        int cin = g.InChannels, taps = g.KernelHeight * g.KernelWidth;
        for (int o = 0; o < g.OutChannels; o++)
            for (int c = 0; c < cin; c++)
                for (int t = 0; t < taps; t++)
                    packed[(o * taps + t) * cin + c] = weight[(o * cin + c) * taps + t];
    }

    /// <summary>[cout][kh][kw][cin] → [cout][cin][kh][kw], PyTorch's layout.</summary>
    private static void UnpackWeight(in ConvGeometry g, ReadOnlySpan<float> packed, Span<float> weight)
    {
        int cin = g.InChannels, taps = g.KernelHeight * g.KernelWidth;
        for (int o = 0; o < g.OutChannels; o++)
            for (int c = 0; c < cin; c++)
                for (int t = 0; t < taps; t++)
                    weight[(o * cin + c) * taps + t] = packed[(o * taps + t) * cin + c];
    }

    private static void CheckGeometry(in ConvGeometry g)
    {
        if (!g.IsValid) throw new ArgumentException($"{g} is not a usable convolution; ConvGeometry.Validate says why", nameof(g));
    }

    private static void Check(in ConvGeometry g, int rows, int xLength, int weightLength, int scratchLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        CheckGeometry(g);
        Need(xLength, (long)rows * g.InputLength, "x", "rows·InputLength");
        Exactly(weightLength, g.WeightCount, "weight", "WeightCount");
        Need(scratchLength, ScratchFloats(g, rows), "scratch", "ScratchFloats(g, rows)");
    }

    private static void Need(int length, long needed, string name, string rule)
    {
        if (length < needed) throw new ArgumentException($"{name} has {length} elements, needs {rule} = {needed}", name);
        Debug.Assert(needed <= int.MaxValue);
    }

    private static void Exactly(int length, int expected, string name, string rule)
    {
        if (length != expected) throw new ArgumentException($"{name} has {length} elements, the geometry's {rule} is {expected}", name);
    }
}

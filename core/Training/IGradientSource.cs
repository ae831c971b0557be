// Where shard gradients come from. Local mode computes them on in-process threads, distributed mode on remote
// workers; both hand back the same tree-reduced sum, so averaging, clipping and the optimizer step exist once.
namespace DistTrain.Core.Training;

public interface IGradientSource
{
    /// <summary>
    /// Computes, for every shard of <paramref name="request"/>'s plan, the summed gradient, loss and correct count,
    /// and completes the fixed pairwise tree so that <see cref="GradientResult.GradientSum"/> holds the batch sum — or,
    /// when the request asks for it (<see cref="GradientRequest.MeanOf"/>) and the source can, the sum divided by
    /// MeanOf, with <see cref="GradientResult.IsMean"/> set.
    /// </summary>
    ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken);
}

/// <summary>One step's work: the weights (version = completed steps) and the batch's sample indices.</summary>
public sealed class GradientRequest
{
    public long Step { get; set; }
    public float[] Parameters { get; set; } = [];
    public ArraySegment<int> BatchIndices { get; set; }
    public ShardPlan Plan { get; set; }
    /// <summary>
    /// The 16-bit wire: the step computes on <see cref="Parameters"/> rounded to bfloat16 (each source rounds them as
    /// it copies them; the array itself stays the optimizer's float32 weights), and each shard's gradient is rounded
    /// to bfloat16 before it is summed (ShardBlockComputer), so a worker can send both at 2 bytes per value exactly.
    /// </summary>
    public bool RoundToBf16 { get; set; }
    /// <summary>
    /// With <see cref="RoundToBf16"/>: <see cref="Parameters"/> rounded and encoded as bfloat16 (2 bytes each,
    /// little-endian, as BFloat16.Encode writes them) when the step has them already — the optimizer's step wrote them
    /// piece by piece as it updated the weights — so a source that sends them need not encode them again. Empty
    /// otherwise. Unchanged until the step returns.
    /// </summary>
    public ReadOnlyMemory<byte> Bf16Parameters { get; set; }
    /// <summary>
    /// Above 0: the caller wants the sum divided by this (the batch's mean gradient), which a source may compute in the
    /// tree's last pass instead of leaving it to a pass of its own; the bits are those of dividing the sum.
    /// </summary>
    public int MeanOf { get; set; }
    /// <summary>
    /// With <see cref="MeanOf"/>: slices tiling the vector (the layers) whose norms the step measures next, or null. A
    /// source that takes the mean in the tree's last pass may take their sums of squares there too
    /// (<see cref="GradientResult.SliceSquares"/>), in Clipping's order, instead of leaving the step a pass of its own.
    /// </summary>
    public (int Offset, int Length)[]? NormSlices { get; set; }
}

/// <summary>Who computed which shards of a step (for the step log).</summary>
public readonly record struct BlockRecord(int FirstShard, int ShardCount, string Executor);

public sealed class GradientResult
{
    public GradientResult(int parameterCount) => GradientSum = new float[parameterCount];

    /// <summary>Σ over the batch of per-sample gradients, reduced along the shard tree (divided by MeanOf when <see cref="IsMean"/>).</summary>
    public float[] GradientSum { get; }
    /// <summary>Whether the source divided <see cref="GradientSum"/> by the request's MeanOf.</summary>
    public bool IsMean { get; set; }
    /// <summary>
    /// The sums of squares of the mean over the request's NormSlices, when the source took them
    /// (<see cref="HasSquares"/>); see <see cref="TakeSquares"/>. A source that changes GradientSum after the tree (a
    /// wrapper) must clear HasSquares, or the step measures the norms of what the tree left.
    /// </summary>
    public double[] SliceSquares { get; private set; } = [];
    public bool HasSquares { get; set; }

    /// <summary>
    /// The buffer for the sums of squares of <paramref name="request"/>'s NormSlices when the request asks for them
    /// with the mean (empty otherwise); a source that fills it sets <see cref="HasSquares"/>.
    /// </summary>
    public Span<double> TakeSquares(GradientRequest request)
    {
        if (request.MeanOf <= 0 || request.NormSlices is not { } slices) return default;
        if (SliceSquares.Length != slices.Length) SliceSquares = new double[slices.Length];
        return SliceSquares;
    }
    /// <summary>Per-shard summed loss, correct predictions and sample counts (index = shard).</summary>
    private readonly List<(double[] Loss, int[] Correct, int[] Samples)> _byCount = [];
    public double[] ShardLoss { get; private set; } = [];
    public int[] ShardCorrect { get; private set; } = [];
    public int[] ShardSamples { get; private set; } = [];
    public List<BlockRecord> Blocks { get; } = [];

    public void Reset(int shardCount)
    {
        if (ShardLoss.Length != shardCount)
        {
            // An epoch's last batch often has fewer shards than the others: the arrays of each count seen are kept,
            // so alternating between the two allocates nothing after the first epoch.
            int cached = -1;
            for (int i = 0; i < _byCount.Count && cached < 0; i++)
                if (_byCount[i].Loss.Length == shardCount) cached = i;
            if (cached < 0)
            {
                _byCount.Add((new double[shardCount], new int[shardCount], new int[shardCount]));
                cached = _byCount.Count - 1;
            }
            (ShardLoss, ShardCorrect, ShardSamples) = _byCount[cached];
        }
        Array.Clear(ShardLoss);
        Array.Clear(ShardCorrect);
        Array.Clear(ShardSamples);
        Blocks.Clear();
        IsMean = false;
        HasSquares = false;
    }

    public double TotalLoss()
    {
        double sum = 0;
        foreach (var loss in ShardLoss) sum += loss;
        return sum;
    }

    public int TotalCorrect() => ShardCorrect.Sum();
    public int TotalSamples() => ShardSamples.Sum();
}

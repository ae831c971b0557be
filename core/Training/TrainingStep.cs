// The one synchronous data-parallel step shared by local and distributed mode: gather the tree-reduced gradient
// sum from the gradient source, average it over the batch, measure per-layer and global norms, clip, skip the step
// if anything is non-finite, and let the optimizer update the weights (version v → v+1).
using DistTrain.Core.Model;
using DistTrain.Core.Optim;

namespace DistTrain.Core.Training;

public enum NonFinitePolicy { Skip, Stop }

public sealed class StepOptions
{
    public int ShardSize { get; init; } = 256;
    /// <summary>Global-norm clipping threshold c; 0 or less turns clipping off.</summary>
    public double ClipNorm { get; init; }
    public NonFinitePolicy NonFinite { get; init; } = NonFinitePolicy.Skip;
    /// <summary>
    /// The 16-bit wire (training.wire = bf16): every step computes on the weights rounded to bfloat16 and rounds each
    /// shard's gradient to bfloat16 — in local mode too, so a run is bit-identical whether or not it is distributed.
    /// </summary>
    public bool Bf16Wire { get; init; }
    /// <summary>Threads of the optimizer step (its result does not depend on them).</summary>
    public int Threads { get; init; } = 1;
}

/// <summary>What one step did (norms are of the averaged gradient before clipping).</summary>
public sealed class StepOutcome
{
    public StepOutcome(int groups) => LayerNorms = new double[groups];
    public long Step { get; set; }
    public double LossSum { get; set; }
    public int Correct { get; set; }
    public int Samples { get; set; }
    public double GradientNorm { get; set; }
    public double[] LayerNorms { get; }
    public bool Clipped { get; set; }
    public bool Skipped { get; set; }
    public float LearningRate { get; set; }
}

public sealed class NonFiniteGradientException(long step, double norm)
    : Exception($"step {step}: the averaged gradient is not finite (norm {norm}); stopping as training.nonFinite is 'stop'")
{
    public long Step { get; } = step;
}

public sealed class TrainingStep
{
    private readonly Network _network;
    private readonly IGradientSource _source;
    private readonly GradientRequest _request = new();
    private readonly GradientResult _result;
    // The step's averaged gradient: the source's result when it averaged (GradientResult.IsMean), else _ownMean.
    private float[] _mean;
    private readonly float[] _ownMean;
    private readonly (int Offset, int Length)[] _groups;
    private readonly StepOutcome _outcome;
    private readonly RunningStatistics[] _statistics;
    private readonly float[] _batchStatistics;
    private readonly float[] _heldStatistics;
    // The 16-bit wire's encoding of Parameters, written by the optimizer as it updates each piece, and the version of
    // the weights it holds (-1: none yet).
    private readonly byte[]? _bf16;
    private long _bf16Version = -1;
    // The layers, when the sources may measure their norms in the tree's last pass: they tile the vector and no batch
    // statistics are taken out of the mean before the norms.
    private readonly (int Offset, int Length)[]? _normSlices;

    public TrainingStep(Network network, float[] parameters, IOptimizer optimizer, ILearningRateSchedule schedule,
        StepOptions options, IGradientSource source)
    {
        if (parameters.Length != network.ParameterCount)
            throw new ArgumentException($"expected {network.ParameterCount} parameters, found {parameters.Length}",
                nameof(parameters));
        _network = network;
        Parameters = parameters;
        Optimizer = optimizer;
        Schedule = schedule;
        Options = options;
        _source = source;
        optimizer.Threads = options.Threads;
        _result = new GradientResult(network.ParameterCount);
        _mean = _ownMean = new float[network.ParameterCount];
        _groups = network.Groups.Select(g => (g.Offset, g.Length)).ToArray();
        _outcome = new StepOutcome(_groups.Length);
        _statistics = [.. network.Statistics];
        _batchStatistics = new float[_statistics.Sum(s => 2 * s.Channels + 1)];
        _heldStatistics = new float[_batchStatistics.Length];
        if (_statistics.Length == 0 && Clipping.Tiles(_groups, network.ParameterCount)) _normSlices = _groups;
        // Batch norm's running statistics are written after the optimizer: the weights it leaves are not final there.
        if (options.Bf16Wire && optimizer is OptimizerBase fused && fused.AfterUpdate is null && _statistics.Length == 0)
        {
            _bf16 = new byte[2 * parameters.Length];
            fused.AfterUpdate = new Bf16Pieces(parameters, _bf16);
        }
    }

    /// <summary>Encodes each piece of the weights as the optimizer writes it.</summary>
    private sealed class Bf16Pieces(float[] parameters, byte[] encoded) : Kernels.UpdatedPieces
    {
        public override void Updated(int start, int count) => Kernels.BFloat16.Encode(parameters.AsSpan(start, count),
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(encoded.AsSpan(2 * start, 2 * count)));
    }

    public float[] Parameters { get; }
    public IOptimizer Optimizer { get; }
    public ILearningRateSchedule Schedule { get; }
    public StepOptions Options { get; }
    /// <summary>Completed steps, which is also the version of <see cref="Parameters"/>.</summary>
    public long Step { get; set; }
    public long SkippedSteps { get; set; }
    public long ClipEvents { get; set; }
    /// <summary>The averaged (and clipped) gradient of the last step.</summary>
    public ReadOnlySpan<float> MeanGradient => _mean;
    /// <summary>Per-layer norms of the last step's averaged gradient (before clipping).</summary>
    public ReadOnlySpan<double> LastLayerNorms => _outcome.LayerNorms;
    /// <summary>Who computed which shards in the last step.</summary>
    public IReadOnlyList<BlockRecord> LastBlocks => _result.Blocks;

    /// <summary>Runs one step on the batch; the returned outcome object is reused by the next call.</summary>
    public ValueTask<StepOutcome> RunAsync(ArraySegment<int> batchIndices, CancellationToken cancellationToken = default)
    {
        _request.Step = Step;
        // The optimizer keeps float32 weights; with the 16-bit wire the source computes on (and the wire carries) their
        // rounding, made where the weights are copied anyway (into a worker's message, the shared file, a local buffer).
        _request.Parameters = Parameters;
        _request.RoundToBf16 = Options.Bf16Wire;
        _request.Bf16Parameters = _bf16 is not null && _bf16Version == Step ? _bf16 : ReadOnlyMemory<byte>.Empty;
        _request.BatchIndices = batchIndices;
        _request.Plan = new ShardPlan(batchIndices.Count, Options.ShardSize);
        // The mean is taken in the tree's last pass where the source can (the same bits as dividing the sum here).
        _request.MeanOf = batchIndices.Count;
        _request.NormSlices = _normSlices;
        var pending = _source.ComputeAsync(_request, _result, cancellationToken);
        // Local sources finish synchronously: no async state machine, so the step allocates nothing.
        if (pending.IsCompletedSuccessfully)
        {
            pending.GetAwaiter().GetResult();
            return new ValueTask<StepOutcome>(Apply(batchIndices.Count));
        }
        return AwaitAndApply(pending, batchIndices.Count);
    }

    private async ValueTask<StepOutcome> AwaitAndApply(ValueTask pending, int batchSize)
    {
        await pending.ConfigureAwait(false);
        return Apply(batchSize);
    }

    private StepOutcome Apply(int batchSize)
    {
        var outcome = _outcome;
        outcome.Step = Step;
        outcome.LossSum = _result.TotalLoss();
        outcome.Correct = _result.TotalCorrect();
        outcome.Samples = _result.TotalSamples();
        if (outcome.Samples != batchSize)
            throw new InvalidOperationException(
                $"step {Step}: gradient source covered {outcome.Samples} samples, expected {batchSize}");

        if (_result.IsMean) _mean = _result.GradientSum;
        else
        {
            _mean = _ownMean;
            Mean(_result.GradientSum, batchSize, _mean);
        }
        // Batch norm's slots carry the batch's statistics, not a gradient: taken out before norms, clipping and the
        // optimizer, and folded into the running statistics after the update.
        bool statisticsFinite = TakeStatistics();
        double norm = _result.IsMean && _result.HasSquares
            ? Clipping.NormsFromSquares(_result.SliceSquares, outcome.LayerNorms)
            : Clipping.LayerAndGlobalNorms(_mean, _groups, outcome.LayerNorms);
        if (!statisticsFinite) norm = double.NaN;
        outcome.GradientNorm = norm;
        outcome.LearningRate = Schedule.At(Step);
        outcome.Clipped = false;
        outcome.Skipped = !double.IsFinite(norm);
        if (outcome.Skipped)
        {
            if (Options.NonFinite == NonFinitePolicy.Stop) throw new NonFiniteGradientException(Step, norm);
            SkippedSteps++;
            // The weights stay as they were, and so does their encoding.
            if (_bf16Version == Step) _bf16Version = Step + 1;
        }
        else
        {
            if (Clipping.ClipToNorm(_mean, norm, Options.ClipNorm))
            {
                outcome.Clipped = true;
                ClipEvents++;
            }
            _bf16Version = -1;
            Optimizer.Step(Parameters, _mean, outcome.LearningRate);
            if (_bf16 is not null) _bf16Version = Step + 1;
            UpdateRunningStatistics();
        }
        Step++;
        return outcome;
    }

    /// <summary>
    /// mean = sum / count. For a power of two the reciprocal is exact, so sum · (1/count) rounds the same real number as
    /// the division and gives the same bits, at a fraction of a division's cost.
    /// </summary>
    internal static void Mean(ReadOnlySpan<float> sum, int count, Span<float> mean) => Kernels.ElementWise.DivideByCount(sum, count, mean);

    /// <summary>Moves the statistics out of the averaged gradient (zeroing their slots); false if any is not finite.</summary>
    private bool TakeStatistics()
    {
        int at = 0;
        bool finite = true;
        foreach (var s in _statistics)
        {
            finite &= Take(s.MeanOffset, s.Channels, ref at);
            finite &= Take(s.VarianceOffset, s.Channels, ref at);
            finite &= Take(s.CountOffset, 1, ref at);
        }
        return finite;
    }

    private bool Take(int offset, int length, ref int at)
    {
        var slot = _mean.AsSpan(offset, length);
        slot.CopyTo(_batchStatistics.AsSpan(at, length));
        Parameters.AsSpan(offset, length).CopyTo(_heldStatistics.AsSpan(at, length));
        bool finite = true;
        foreach (float v in slot) finite &= float.IsFinite(v);
        slot.Clear();
        at += length;
        return finite;
    }

    /// <summary>
    /// PyTorch's rule, running ← (1 − momentum)·running + momentum·batch, for the mean and the unbiased variance (the
    /// batch's: the average over its shards); num_batches_tracked + 1. The optimizer's update of these slots (a zero
    /// gradient, but weight decay) is undone first.
    /// </summary>
    private void UpdateRunningStatistics()
    {
        int at = 0;
        foreach (var s in _statistics)
        {
            float keep = (float)(1 - s.Momentum), take = (float)s.Momentum;
            for (int c = 0; c < 2 * s.Channels; c++)
            {
                int offset = c < s.Channels ? s.MeanOffset + c : s.VarianceOffset + c - s.Channels;
                Parameters[offset] = keep * _heldStatistics[at + c] + take * _batchStatistics[at + c];
            }
            at += 2 * s.Channels;
            Parameters[s.CountOffset] = _heldStatistics[at] + 1;
            at++;
        }
    }
}

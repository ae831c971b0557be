// What every optimizer shares: the completed-step counter (Adam's bias correction reads it, checkpoints restore
// it) and the named state buffers, which are the live arrays a checkpoint writes and copies back into.
namespace DistTrain.Core.Optim;

public abstract class OptimizerBase : IOptimizer
{
    private long _stepCount;

    public abstract string Name { get; }

    /// <summary>Completed steps; the next step is number StepCount + 1.</summary>
    public long StepCount
    {
        get => _stepCount;
        set { ArgumentOutOfRangeException.ThrowIfNegative(value); _stepCount = value; }
    }

    private int _threads = 1;

    /// <summary>Threads a step may use (see <see cref="IOptimizer.Threads"/>).</summary>
    public int Threads
    {
        get => _threads;
        set { ArgumentOutOfRangeException.ThrowIfLessThan(value, 1); _threads = value; }
    }

    /// <summary>
    /// Told each piece of the parameters as a step writes it (see <see cref="Kernels.UpdatedPieces"/>), for a pass over
    /// the new weights fused into the step; null: none. Every built-in optimizer honours it.
    /// </summary>
    public Kernels.UpdatedPieces? AfterUpdate { get; set; }

    /// <summary>The live state buffers (see <see cref="IOptimizer.State"/>).</summary>
    public IReadOnlyDictionary<string, float[]> State => StateBuffers;

    /// <summary>Filled by the constructor; its keys never change afterwards.</summary>
    protected Dictionary<string, float[]> StateBuffers { get; } = [];

    public abstract void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate);

    /// <summary>Called by Step once the update has been applied.</summary>
    protected void CompleteStep() => _stepCount++;
}

// The optimizer contract: an in-place update of the flat parameter buffer from the (averaged, clipped) flat
// gradient. State lives in named flat buffers so checkpoints and the wire never depend on the optimizer kind.
namespace DistTrain.Core.Optim;

public interface IOptimizer
{
    /// <summary>Short name used in configs and checkpoints ("sgd", "adam", ...).</summary>
    string Name { get; }

    /// <summary>Number of completed steps (Adam's bias correction uses it).</summary>
    long StepCount { get; set; }

    /// <summary>
    /// Named state buffers, each of the parameter count's length (e.g. "m", "v"); empty for plain SGD. These are
    /// the optimizer's live arrays, never copies: a checkpoint writes them as they are, and a restore copies the
    /// saved values back into them and then sets <see cref="StepCount"/> (see <see cref="OptimizerState"/>).
    /// The set of keys is fixed at construction, so a restored optimizer continues bit-identically.
    /// </summary>
    IReadOnlyDictionary<string, float[]> State { get; }

    /// <summary>
    /// Threads a step may use (at least 1). Every element's update is independent of the others, so the result never
    /// depends on it; the optimizer runs alone between two gradient computations, so the compute threads are idle.
    /// </summary>
    int Threads { get; set; }

    /// <summary>w ← update(w, g) with learning rate lr; increments <see cref="StepCount"/>.</summary>
    void Step(Span<float> parameters, ReadOnlySpan<float> gradient, float learningRate);
}

/// <summary>Learning rate as a function of the step number (0-based count of completed steps).</summary>
public interface ILearningRateSchedule
{
    float At(long step);
}

// Restoring an optimizer from saved state: the State buffers are live arrays, so a restore copies values into
// them (never replaces them) and then sets StepCount; checks that the saved state fits this optimizer.
namespace DistTrain.Core.Optim;

public static class OptimizerState
{
    /// <summary>
    /// Copies <paramref name="saved"/> into <paramref name="optimizer"/>'s live State buffers and sets its
    /// StepCount. The saved keys must be exactly the optimizer's, each of the same length; a mismatch (a
    /// checkpoint from another optimizer or model) is a <see cref="UserInputException"/> naming the key.
    /// </summary>
    public static void Restore(IOptimizer optimizer, IReadOnlyDictionary<string, float[]> saved, long stepCount)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(saved);
        if (stepCount < 0)
            throw new UserInputException($"checkpoint optimizer step must be >= 0, found {stepCount}");
        var live = optimizer.State;
        foreach (var key in saved.Keys)
            if (!live.ContainsKey(key))
                throw new UserInputException(
                    $"checkpoint optimizer state '{key}' is not used by optimizer '{optimizer.Name}'; expected keys: {string.Join(", ", live.Keys)}");
        // Validate everything before copying anything, so a failed restore leaves the optimizer untouched.
        foreach (var (key, buffer) in live)
        {
            if (!saved.TryGetValue(key, out var values))
                throw new UserInputException(
                    $"checkpoint lacks optimizer state '{key}' needed by optimizer '{optimizer.Name}'");
            if (values.Length != buffer.Length)
                throw new UserInputException(
                    $"checkpoint optimizer state '{key}' must have {buffer.Length} values, found {values.Length}");
        }
        foreach (var (key, buffer) in live)
            saved[key].AsSpan().CopyTo(buffer);
        optimizer.StepCount = stepCount;
    }
}

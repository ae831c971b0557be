// An in-memory labelled dataset: row-major float32 features [Count × Width] and integer class labels.
namespace DistTrain.Core.Data;

public sealed class Dataset
{
    public Dataset(float[] features, int[] labels, int width, int classes, string source)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (width <= 0) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be positive");
        if (features.Length != labels.Length * (long)width)
            throw new ArgumentException(
                $"features has {features.Length} values, expected {labels.Length} rows × {width} = {labels.Length * (long)width}",
                nameof(features));
        Features = features;
        Labels = labels;
        Width = width;
        Classes = classes;
        Source = source;
    }

    /// <summary>Row-major [Count × Width].</summary>
    public float[] Features { get; }
    public int[] Labels { get; }
    public int Width { get; }
    /// <summary>Number of classes (labels are in 0..Classes-1).</summary>
    public int Classes { get; }
    /// <summary>Where the data came from, for messages (a path or a generator description).</summary>
    public string Source { get; }
    public int Count => Labels.Length;
    /// <summary>Each sample's shape ([C, H, W] for images), when the source knows it.</summary>
    public int[]? Shape { get; init; }

    public ReadOnlySpan<float> Row(int index) => Features.AsSpan(index * Width, Width);

    /// <summary>
    /// The same rows with another class count (arrays shared, not copied): train and test must agree on Classes
    /// even when one of them happens not to contain the highest label.
    /// </summary>
    public Dataset WithClasses(int classes) =>
        classes == Classes ? this : new Dataset(Features, Labels, Width, classes, Source) { Shape = Shape };
}

/// <summary>A training set and an optional held-out test set.</summary>
public sealed record DataSplit(Dataset Train, Dataset? Test)
{
    /// <summary>What was done to the raw features (DataLoader sets it), so a model trained on this data can save it.</summary>
    public Preprocessing? Preprocessing { get; init; }
}

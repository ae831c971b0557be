// The "data" section of a training config: which source to load and how to preprocess it. Plain settable
// properties so Microsoft.Extensions.Configuration can bind them; DataLoader validates them.
namespace DistTrain.Core.Data;

public sealed class DataSpec
{
    /// <summary>Where Debian's dataset-fashion-mnist package installs the data; the default for "idx".</summary>
    public const string DefaultIdxDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>
    /// Data handed to the training API in code rather than named by a config: nothing to load, so a worker
    /// receives the rows from the coordinator.
    /// </summary>
    public const string InMemoryFormat = "memory";

    /// <summary>idx | csv | spirals | blobs (or <see cref="InMemoryFormat"/>, which is not loadable).</summary>
    public string Format { get; set; } = "idx";

    /// <summary>idx: the directory holding train-*/t10k-* files (default <see cref="DefaultIdxDirectory"/>); csv: the training file.</summary>
    public string? Path { get; set; }

    /// <summary>idx: a directory holding the t10k-* files; csv: the test file. Optional.</summary>
    public string? TestPath { get; set; }

    /// <summary>csv with separate label files (X_train.csv + y_train.csv): the training labels file.</summary>
    public string? LabelsPath { get; set; }

    /// <summary>csv with separate label files: the test labels file (required when TestPath is set).</summary>
    public string? TestLabelsPath { get; set; }

    /// <summary>csv in one file: the label column's header name, or its 0-based index when there is no header.</summary>
    public string LabelColumn { get; set; } = "label";

    /// <summary>Divide every feature by this (1 = leave as is). Default: 255 for idx and csv, 1 for synthetic.</summary>
    public float? Scale { get; set; }

    /// <summary>
    /// Standardise with the training set's statistics (after scaling): "per-feature" (or true) gives each feature
    /// its own mean and std, "per-channel" one per image channel, "none" (or false, or unset) leaves features scaled.
    /// </summary>
    public string? Standardize { get; set; }

    /// <summary>Image channels of a sample, stored channel-major (CHW); used by per-channel standardisation. Default 1.</summary>
    public int Channels { get; set; } = 1;
    /// <summary>CSV: each row's shape, [width] or [channels, height, width] (channels first, as PyTorch); IDX images are [1, rows, columns].</summary>
    public int[]? Shape { get; set; }

    public static readonly IReadOnlyList<string> StandardizeValues = ["none", "per-feature", "per-channel", "true", "false"];

    /// <summary>The standardisation <see cref="Standardize"/> names; a one-line error for anything else.</summary>
    public StandardizeMode StandardizeMode => (Standardize ?? "").Trim().ToLowerInvariant() switch
    {
        "" or "none" or "false" => StandardizeMode.None,
        "per-feature" or "true" => StandardizeMode.PerFeature,
        "per-channel" => StandardizeMode.PerChannel,
        _ => throw new UserInputException(
            $"data.standardize is '{Standardize}', expected one of: none, per-feature, per-channel (true = per-feature)"),
    };

    /// <summary>Synthetic: total samples before the test split (spirals: divided evenly among classes).</summary>
    public int Samples { get; set; } = 600;

    /// <summary>Synthetic: number of classes (default 3). idx/csv: when set, labels must lie in 0..Classes-1.</summary>
    public int? Classes { get; set; }

    /// <summary>blobs: feature count (spirals are always 2-D).</summary>
    public int Features { get; set; } = 2;

    /// <summary>spirals: angle noise (default 0.2); blobs: cluster standard deviation (default 1).</summary>
    public double? Noise { get; set; }

    /// <summary>Synthetic: generator seed (also picks the held-out test rows).</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Synthetic: fraction of the generated rows held out as the test set.</summary>
    public double TestFraction { get; set; } = 0.2;
}

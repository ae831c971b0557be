// Turns a DataSpec into a DataSplit: dispatches on the format, checks the settings a user wrote (errors name the
// data.* key), then applies scaling and optional standardisation fitted on the training set.
namespace DistTrain.Core.Data;

public static class DataLoader
{
    public static readonly IReadOnlyList<string> Formats = ["idx", "csv", "spirals", "blobs"];

    public static DataSplit Load(DataSpec spec) => Load(spec, out _);

    /// <param name="spec">The config's data section.</param>
    /// <param name="preprocessing">The scaling and standardisation applied (to save with a model).</param>
    public static DataSplit Load(DataSpec spec, out Preprocessing preprocessing)
    {
        ArgumentNullException.ThrowIfNull(spec);
        StandardizeMode mode = spec.StandardizeMode;
        if (spec.Channels < 1) throw new UserInputException($"data.channels is {spec.Channels}, expected a positive integer");
        DataSplit split = LoadRaw(spec, out float scale);
        if (mode == StandardizeMode.PerChannel && split.Train.Width % spec.Channels != 0)
            throw new UserInputException(
                $"data.channels is {spec.Channels}, but samples have {split.Train.Width} features, which do not split into {spec.Channels} equal planes");
        Normalization.Scale(split.Train, scale);
        if (split.Test is not null) Normalization.Scale(split.Test, scale);
        FeatureStatistics? statistics = mode switch
        {
            StandardizeMode.PerFeature => Normalization.ComputeStatistics(split.Train),
            StandardizeMode.PerChannel => Normalization.ComputeChannelStatistics(split.Train, spec.Channels),
            _ => null,
        };
        preprocessing = statistics is null
            ? Preprocessing.ScaleOnly(scale)
            : new Preprocessing(scale, mode, statistics.Mean, statistics.StdDev, spec.Channels);
        preprocessing.Standardize(split.Train);
        if (split.Test is not null) preprocessing.Standardize(split.Test);
        return split with { Preprocessing = preprocessing };
    }

    /// <summary>
    /// The data as read, before any scaling or standardisation (what <see cref="Preprocessing.Apply"/> takes), and
    /// the scale the spec asks for.
    /// </summary>
    public static DataSplit LoadRaw(DataSpec spec, out float scale)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string format = (spec.Format ?? "").Trim().ToLowerInvariant();
        bool synthetic = format is "spirals" or "blobs";
        scale = spec.Scale ?? (synthetic ? 1f : 255f);
        if (!float.IsFinite(scale) || scale <= 0)
            throw new UserInputException($"data.scale is {scale}, expected a positive number (1 = no scaling)");

        DataSplit split = format switch
        {
            "idx" => LoadIdx(spec),
            "csv" => LoadCsv(spec),
            "spirals" or "blobs" => LoadSynthetic(spec, format),
            DataSpec.InMemoryFormat => throw new UserInputException(
                $"data.format '{DataSpec.InMemoryFormat}' stands for rows a program passed to the training API; there is nothing to load"),
            _ => throw new UserInputException(
                $"data.format is '{spec.Format}', expected one of: {string.Join(", ", Formats)}"),
        };
        return split;
    }

    private static DataSplit LoadIdx(DataSpec spec)
    {
        DataSplit split = MnistLayout.Load(
            string.IsNullOrWhiteSpace(spec.Path) ? DataSpec.DefaultIdxDirectory : spec.Path,
            string.IsNullOrWhiteSpace(spec.TestPath) ? null : spec.TestPath);
        if (spec.Classes is not int classes) return split;
        RequirePositive(classes, "data.classes");
        CheckLabels(split.Train, classes);
        if (split.Test is not null) CheckLabels(split.Test, classes);
        return new DataSplit(split.Train.WithClasses(classes), split.Test?.WithClasses(classes));
    }

    private static void CheckLabels(Dataset data, int classes)
    {
        for (int i = 0; i < data.Count; i++)
            if (data.Labels[i] >= classes)
                throw new UserInputException(
                    $"{data.Source}: label {data.Labels[i]} of item {i} out of range 0..{classes - 1} (data.classes = {classes})");
    }

    private static DataSplit LoadCsv(DataSpec spec)
    {
        if (string.IsNullOrWhiteSpace(spec.Path))
            throw new UserInputException("data.path is not set; the csv format needs the training file");
        if (spec.Classes is int c) RequirePositive(c, "data.classes");
        bool separate = !string.IsNullOrWhiteSpace(spec.LabelsPath);
        bool hasTest = !string.IsNullOrWhiteSpace(spec.TestPath);
        if (separate && hasTest && string.IsNullOrWhiteSpace(spec.TestLabelsPath))
            throw new UserInputException(
                $"data.testLabelsPath is not set, but data.labelsPath is, so the test file {spec.TestPath} needs its labels file too");
        if (!separate && !string.IsNullOrWhiteSpace(spec.TestLabelsPath))
            throw new UserInputException("data.testLabelsPath is set but data.labelsPath is not; set both or neither");

        Dataset Read(string path, string? labels) => separate
            ? CsvReader.ReadSeparate(path, labels!, spec.Classes)
            : CsvReader.ReadCombined(path, spec.LabelColumn, spec.Classes);

        Dataset train = WithShape(Read(spec.Path, spec.LabelsPath), spec.Shape);
        Dataset? test = hasTest ? WithShape(Read(spec.TestPath!, spec.TestLabelsPath), spec.Shape) : null;
        if (test is null) return new DataSplit(train, null);
        if (test.Width != train.Width)
            throw new UserInputException(
                $"{test.Source}: {test.Width} feature columns, but the training file {train.Source} has {train.Width}");
        int classes = Math.Max(train.Classes, test.Classes);
        return new DataSplit(train.WithClasses(classes), test.WithClasses(classes));
    }

    private static DataSplit LoadSynthetic(DataSpec spec, string format)
    {
        int classes = spec.Classes ?? 3;
        RequirePositive(classes, "data.classes");
        RequirePositive(spec.Samples, "data.samples");
        double noise = spec.Noise ?? (format == "spirals" ? 0.2 : 1.0);
        if (!double.IsFinite(noise) || noise < 0)
            throw new UserInputException($"data.noise is {noise}, expected a non-negative number");
        if (!(spec.TestFraction >= 0 && spec.TestFraction < 1))
            throw new UserInputException($"data.testFraction is {spec.TestFraction}, expected a number in [0, 1)");

        Dataset all;
        if (format == "spirals")
        {
            if (spec.Samples < classes)
                throw new UserInputException($"data.samples is {spec.Samples}, expected at least one per class ({classes})");
            all = Synthetic.Spirals(spec.Samples / classes, classes, noise, spec.Seed);
        }
        else
        {
            RequirePositive(spec.Features, "data.features");
            if ((long)spec.Samples * spec.Features > Array.MaxLength)
                throw new UserInputException($"data.samples × data.features = {(long)spec.Samples * spec.Features} is too large");
            all = Synthetic.Blobs(spec.Samples, spec.Features, classes, noise, spec.Seed);
        }
        return HoldOut(all, spec.TestFraction, spec.Seed);
    }

    /// <summary>
    /// Shuffles rows with a seed-derived permutation and keeps the last fraction as the test set, so train and
    /// test both mix all classes (generators emit rows grouped by class).
    /// </summary>
    internal static DataSplit HoldOut(Dataset all, double testFraction, int seed)
    {
        int testCount = (int)Math.Round(all.Count * testFraction);
        if (testCount >= all.Count) testCount = all.Count - 1;
        // A fixed offset keeps this permutation unrelated to the generator's stream for the same seed.
        int[] order = Sampler.EpochPermutation(unchecked((ulong)seed) ^ 0x5EED_7E57_0000_0001UL, 0, all.Count);
        Dataset Take(int start, int count)
        {
            var features = new float[(long)count * all.Width];
            var labels = new int[count];
            for (int i = 0; i < count; i++)
            {
                int source = order[start + i];
                all.Row(source).CopyTo(features.AsSpan(i * all.Width, all.Width));
                labels[i] = all.Labels[source];
            }
            return new Dataset(features, labels, all.Width, all.Classes, all.Source) { Shape = all.Shape };
        }
        Dataset train = Take(0, all.Count - testCount);
        return new DataSplit(train, testCount > 0 ? Take(all.Count - testCount, testCount) : null);
    }

    private static void RequirePositive(int value, string key)
    {
        if (value <= 0) throw new UserInputException($"{key} is {value}, expected a positive integer");
    }

    /// <summary>The CSV's rows as images of <paramref name="shape"/> (data.shape), checked against the column count.</summary>
    private static Dataset WithShape(Dataset data, int[]? shape)
    {
        if (shape is null) return data;
        if (shape.Length is not (1 or 3) || shape.Any(d => d <= 0))
            throw new UserInputException($"data.shape [{string.Join(", ", shape)}] must be [width] or [channels, height, width] with every dimension > 0");
        long size = shape.Aggregate(1L, (a, b) => a * b);
        if (size != data.Width)
            throw new UserInputException(
                $"{data.Source}: rows have {data.Width} feature columns but data.shape [{string.Join(", ", shape)}] holds {size}");
        return new Dataset(data.Features, data.Labels, data.Width, data.Classes, data.Source) { Shape = shape };
    }
}

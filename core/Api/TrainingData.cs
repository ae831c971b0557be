// Data for a Sequential model from code: anything a JSON config's "data" section can name, or the synthetic
// spirals and blobs, loaded through the same DataLoader so the rows, the test split and the fingerprint match.
using DistTrain.Core.Data;

namespace DistTrain.Core.Api;

public static class TrainingData
{
    /// <summary>Loads what a config's data section describes (idx, csv, spirals, blobs), scaled and standardised as configured.</summary>
    public static DataSplit Load(DataSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return DataLoader.Load(spec);
    }

    /// <summary>
    /// CS231n's interleaved spirals (2 features), <paramref name="samples"/> rows in all, of which
    /// <paramref name="testFraction"/> are held out as the test set; as <c>"format": "spirals"</c> in a config.
    /// </summary>
    public static DataSplit Spirals(int samples = 600, int classes = 3, double noise = 0.2, int seed = 1, double testFraction = 0.2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(samples, classes);
        CheckNoise(noise);
        CheckTestFraction(testFraction);
        return DataLoader.Load(new DataSpec
        {
            Format = "spirals",
            Samples = samples,
            Classes = classes,
            Noise = noise,
            Seed = seed,
            TestFraction = testFraction,
        });
    }

    /// <summary>
    /// Isotropic Gaussian blobs (like scikit-learn's make_blobs) with cluster standard deviation <paramref name="spread"/>;
    /// as <c>"format": "blobs"</c> in a config.
    /// </summary>
    public static DataSplit Blobs(int samples = 600, int features = 2, int classes = 3, double spread = 1, int seed = 1,
        double testFraction = 0.2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(samples, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        if (!double.IsFinite(spread) || spread < 0)
            throw new ArgumentOutOfRangeException(nameof(spread), spread, "must be a finite number ≥ 0");
        CheckTestFraction(testFraction);
        return DataLoader.Load(new DataSpec
        {
            Format = "blobs",
            Samples = samples,
            Features = features,
            Classes = classes,
            Noise = spread,
            Seed = seed,
            TestFraction = testFraction,
        });
    }

    private static void CheckNoise(double noise)
    {
        if (!double.IsFinite(noise) || noise < 0)
            throw new ArgumentOutOfRangeException(nameof(noise), noise, "must be a finite number ≥ 0");
    }

    private static void CheckTestFraction(double testFraction)
    {
        if (!(testFraction >= 0 && testFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(testFraction), testFraction, "must lie in [0, 1)");
    }
}

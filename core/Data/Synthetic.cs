// Small generated datasets for tests and demos (no files needed): CS231n's interleaved spirals and Gaussian
// blobs, both a pure function of their arguments and seed via DeterministicRandom.
namespace DistTrain.Core.Data;

public static class Synthetic
{
    /// <summary>
    /// The CS231n spiral data (https://cs231n.github.io/neural-networks-case-study/): for class k, point i of N has
    /// r = i/(N-1) and t = 4k + 4·i/(N-1) + noise·𝒩(0,1), at (r·sin t, r·cos t). Rows are grouped by class.
    /// </summary>
    public static Dataset Spirals(int samplesPerClass, int classes, double noise, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(samplesPerClass);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        CheckSpread(noise, nameof(noise));
        long total = (long)samplesPerClass * classes;
        if (total * 2 > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(samplesPerClass), total, "too many samples");

        var rng = new DeterministicRandom(unchecked((ulong)seed));
        var features = new float[total * 2];
        var labels = new int[total];
        // numpy's linspace(a, b, 1) is [a]; avoid dividing by zero for a single point per class.
        double step = samplesPerClass > 1 ? 1.0 / (samplesPerClass - 1) : 0;
        for (int k = 0, row = 0; k < classes; k++)
        {
            for (int i = 0; i < samplesPerClass; i++, row++)
            {
                double r = i * step;
                double t = 4.0 * k + 4.0 * i * step + noise * rng.NextGaussian();
                features[2 * row] = (float)(r * Math.Sin(t));
                features[2 * row + 1] = (float)(r * Math.Cos(t));
                labels[row] = k;
            }
        }
        return new Dataset(features, labels, 2, classes,
            $"spirals(samplesPerClass={samplesPerClass}, classes={classes}, noise={noise}, seed={seed})");
    }

    /// <summary>
    /// Isotropic Gaussian blobs, like scikit-learn's make_blobs: class centres uniform in [-10, 10)^features, each
    /// point centre + spread·𝒩(0, I). Classes get samples/classes points each, the first samples % classes one more.
    /// </summary>
    public static Dataset Blobs(int samples, int features, int classes, double spread, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(samples);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(features);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        CheckSpread(spread, nameof(spread));
        if ((long)samples * features > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(samples), samples, "samples × features is too large");

        var rng = new DeterministicRandom(unchecked((ulong)seed));
        var centres = new double[(long)classes * features];
        for (int i = 0; i < centres.Length; i++) centres[i] = -10.0 + 20.0 * rng.NextDouble();

        var values = new float[(long)samples * features];
        var labels = new int[samples];
        int row = 0;
        for (int k = 0; k < classes; k++)
        {
            int inClass = samples / classes + (k < samples % classes ? 1 : 0);
            for (int i = 0; i < inClass; i++, row++)
            {
                labels[row] = k;
                for (int j = 0; j < features; j++)
                    values[(long)row * features + j] = (float)(centres[(long)k * features + j] + spread * rng.NextGaussian());
            }
        }
        return new Dataset(values, labels, features, classes,
            $"blobs(samples={samples}, features={features}, classes={classes}, spread={spread}, seed={seed})");
    }

    private static void CheckSpread(double value, string name)
    {
        if (!double.IsFinite(value) || value < 0)
            throw new ArgumentOutOfRangeException(name, value, "must be a finite non-negative number");
    }
}

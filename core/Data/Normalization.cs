// Feature preprocessing: pixel scaling (÷255) and per-feature or per-channel standardisation whose statistics come from the
// training set only, are applied unchanged to the test set, and are returned so a checkpoint can save them.
using System.Numerics.Tensors;

namespace DistTrain.Core.Data;

/// <summary>Per-feature mean and population standard deviation; a StdDev of 0 marks a constant feature.</summary>
public sealed record FeatureStatistics(double[] Mean, double[] StdDev)
{
    public int Width => Mean.Length;

    /// <summary>In place: x ← (x − mean) / std, or x − mean alone where std is 0 (no divide by zero).</summary>
    public void Apply(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Width != Width)
            throw new ArgumentException($"dataset has {data.Width} features, statistics have {Width}", nameof(data));
        var scale = new double[Width];
        for (int j = 0; j < Width; j++) scale[j] = StdDev[j] > 0 ? 1.0 / StdDev[j] : 1.0;

        float[] x = data.Features;
        for (long row = 0; row < data.Count; row++)
        {
            Span<float> values = x.AsSpan((int)(row * Width), Width);
            for (int j = 0; j < values.Length; j++)
                values[j] = (float)((values[j] - Mean[j]) * scale[j]);
        }
    }
}

public static class Normalization
{
    /// <summary>In place: x ← x / divisor (true division, so 255/255 is exactly 1). A divisor of 1 does nothing.</summary>
    public static void Scale(Dataset data, float divisor)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!float.IsFinite(divisor) || divisor <= 0)
            throw new ArgumentOutOfRangeException(nameof(divisor), divisor, "must be a finite positive number");
        data.Divide(divisor);
    }

    /// <summary>
    /// Per-feature mean and population std of <paramref name="train"/> (two passes, float64 sums), computed
    /// without modifying anything.
    /// </summary>
    public static FeatureStatistics ComputeStatistics(Dataset train) =>
        // Every feature its own one-pixel channel: the same sums in the same order.
        ComputeChannelStatistics(train ?? throw new ArgumentNullException(nameof(train)), train.Width);

    /// <summary>
    /// One mean and population std per channel of <paramref name="train"/>, whose rows hold <paramref name="channels"/>
    /// equal channel-major planes (CHW), over every sample and pixel of the plane (float64 sums, two passes).
    /// </summary>
    public static FeatureStatistics ComputeChannelStatistics(Dataset train, int channels)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0) throw new ArgumentException("cannot standardise an empty training set", nameof(train));
        if (channels < 1 || train.Width % channels != 0)
            throw new ArgumentOutOfRangeException(nameof(channels), channels, $"must divide the width {train.Width}");
        int plane = train.Width / channels;
        double count = (double)train.Count * plane;
        var mean = new double[channels];
        var variance = new double[channels];
        for (int row = 0; row < train.Count; row++)
        {
            ReadOnlySpan<float> values = train.Row(row);
            for (int c = 0; c < channels; c++)
            {
                double sum = 0;
                foreach (float v in values.Slice(c * plane, plane)) sum += v;
                mean[c] += sum;
            }
        }
        for (int c = 0; c < channels; c++) mean[c] /= count;
        for (int row = 0; row < train.Count; row++)
        {
            ReadOnlySpan<float> values = train.Row(row);
            for (int c = 0; c < channels; c++)
            {
                double sum = 0;
                foreach (float v in values.Slice(c * plane, plane))
                {
                    double d = v - mean[c];
                    sum += d * d;
                }
                variance[c] += sum;
            }
        }
        var std = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            std[c] = Math.Sqrt(variance[c] / count);
            // A constant float column can leave a float64 rounding residue (~1e-17) instead of an exact 0;
            // dividing by that would blow noise up to unit scale. Below float32 resolution, call it constant.
            if (std[c] <= 1e-7 * Math.Abs(mean[c])) std[c] = 0;
        }
        return new FeatureStatistics(mean, std);
    }

    /// <summary>Computes statistics on <paramref name="train"/> and applies them, in place, to train and test.</summary>
    public static FeatureStatistics Standardize(Dataset train, Dataset? test = null)
    {
        FeatureStatistics statistics = ComputeStatistics(train);
        statistics.Apply(train);
        if (test is not null) statistics.Apply(test);
        return statistics;
    }
}

// The feature preprocessing a model was trained with (pixel scaling, then optional standardisation), kept so that
// inference and exported models can apply exactly the same transform to raw features.
namespace DistTrain.Core.Data;

public enum StandardizeMode { None, PerFeature, PerChannel }

/// <summary>Raw features x become ((x / Scale) − mean[j]) / std[j] (std 0 ⇒ x − mean only), j the feature index.</summary>
public sealed record Preprocessing(float Scale, StandardizeMode Mode, double[] Mean, double[] StdDev, int Channels)
{
    /// <summary>
    /// The mean subtracted from each of <paramref name="width"/> features (per channel: channel-major CHW, channel
    /// = j / (width / Channels)); zeros when nothing is standardised.
    /// </summary>
    public double[] FeatureMean(int width) => Expand(Mean, width);

    /// <summary>The divisor of each feature, expanded like <see cref="FeatureMean"/>; 0 means "do not divide".</summary>
    public double[] FeatureStdDev(int width) => Expand(StdDev, width);

    /// <summary>In place, the transform training applied.</summary>
    public void Apply(Dataset raw)
    {
        ArgumentNullException.ThrowIfNull(raw);
        Normalization.Scale(raw, Scale);
        if (Mode != StandardizeMode.None)
            new FeatureStatistics(FeatureMean(raw.Width), FeatureStdDev(raw.Width)).Apply(raw);
    }

    private double[] Expand(double[] values, int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        switch (Mode)
        {
            case StandardizeMode.None:
                return new double[width];
            case StandardizeMode.PerFeature:
                if (values.Length != width)
                    throw new UserInputException(
                        $"preprocessing has statistics for {values.Length} features, the data has {width}");
                return (double[])values.Clone();
            default:
                if (Channels <= 0 || width % Channels != 0 || values.Length != Channels)
                    throw new UserInputException(
                        $"preprocessing has {values.Length} statistics for {Channels} channels, which does not divide {width} features");
                int plane = width / Channels;
                return Enumerable.Range(0, width).Select(j => values[j / plane]).ToArray();
        }
    }
}

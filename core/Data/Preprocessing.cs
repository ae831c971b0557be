// What happens to raw features before the network sees them: x / Scale, then standardisation with training-set
// statistics (none, per feature, or per image channel). Saved with a model so predict and the ONNX export apply
// exactly what training applied, without the training set.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace DistTrain.Core.Data;

public enum StandardizeMode
{
    /// <summary>Features are only scaled.</summary>
    None,
    /// <summary>Each feature gets its own mean and std.</summary>
    PerFeature,
    /// <summary>One mean and std per image channel (torchvision's Normalize); features are channel-major (CHW).</summary>
    PerChannel,
}

/// <summary>Raw features x become ((x / Scale) − mean[j]) / std[j], j the feature index; a std of 0 leaves x − mean.</summary>
/// <param name="Scale">Every raw feature is divided by this first (1 = no scaling).</param>
/// <param name="Mode">Which statistics <paramref name="Mean"/> and <paramref name="StdDev"/> hold.</param>
/// <param name="Mean">Per feature (PerFeature), per channel (PerChannel) or empty (None).</param>
/// <param name="StdDev">Population standard deviations, same length as <paramref name="Mean"/>; 0 marks a constant.</param>
/// <param name="Channels">Image channels; features are split channel-major into this many equal planes.</param>
public sealed record Preprocessing(float Scale, StandardizeMode Mode, double[] Mean, double[] StdDev, int Channels)
{
    /// <summary>The safetensors metadata key a saved model keeps this under.</summary>
    public const string MetadataKey = "disttrain_preprocessing";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Scaling alone (no statistics).</summary>
    public static Preprocessing ScaleOnly(float scale) => new(scale, StandardizeMode.None, [], [], 1);

    /// <summary>The per-feature means: the channel's mean repeated over its plane for PerChannel, zeros for None.</summary>
    public double[] FeatureMean(int width) => Expand(Mean, width, 0.0);

    /// <summary>The per-feature standard deviations, expanded like <see cref="FeatureMean"/>; zeros (no divide) for None.</summary>
    public double[] FeatureStdDev(int width) => Expand(StdDev, width, 0.0);

    /// <summary>In place: scales and standardises raw features exactly as training did.</summary>
    public void Apply(Dataset raw)
    {
        ArgumentNullException.ThrowIfNull(raw);
        CheckWidth(raw.Width, raw.Source);
        Normalization.Scale(raw, Scale);
        Standardize(raw);
    }

    /// <summary>In place: the standardisation alone, on features already divided by <see cref="Scale"/>.</summary>
    public void Standardize(Dataset scaled)
    {
        ArgumentNullException.ThrowIfNull(scaled);
        if (Mode != StandardizeMode.None)
            new FeatureStatistics(FeatureMean(scaled.Width), FeatureStdDev(scaled.Width)).Apply(scaled);
    }

    /// <summary>Checks that <paramref name="width"/> features fit these statistics; the message names <paramref name="source"/>.</summary>
    public void CheckWidth(int width, string source)
    {
        bool fits = Mode switch
        {
            StandardizeMode.PerFeature => width == Mean.Length,
            StandardizeMode.PerChannel => Channels > 0 && width % Channels == 0,
            _ => true,
        };
        if (!fits)
            throw new UserInputException(Mode == StandardizeMode.PerFeature
                ? $"{source}: {width} features, but the standardisation statistics are for {Mean.Length}"
                : $"{source}: {width} features do not split into {Channels} equal channel planes");
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads what <see cref="ToJson"/> wrote; <paramref name="source"/> names the file in errors.</summary>
    public static Preprocessing FromJson(string json, string source)
    {
        Preprocessing? result;
        try
        {
            result = JsonSerializer.Deserialize<Preprocessing>(json, Json);
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{source}: metadata '{MetadataKey}' is not valid: {e.Message.Split('\n')[0]}");
        }
        if (result is null || result.Mean is null || result.StdDev is null || result.Mean.Length != result.StdDev.Length ||
            !float.IsFinite(result.Scale) || result.Scale <= 0 || result.Channels < 1 ||
            (result.Mode == StandardizeMode.None) != (result.Mean.Length == 0) ||
            (result.Mode == StandardizeMode.PerChannel && result.Mean.Length != result.Channels) ||
            result.Mean.Any(m => !double.IsFinite(m)) || result.StdDev.Any(s => !double.IsFinite(s) || s < 0))
            throw new UserInputException(
                $"{source}: metadata '{MetadataKey}' is inconsistent (scale {result?.Scale.ToString(CultureInfo.InvariantCulture)}, mode {result?.Mode}, {result?.Mean?.Length} means, {result?.StdDev?.Length} stds, {result?.Channels} channels)");
        return result;
    }

    private double[] Expand(double[] values, int width, double none)
    {
        var result = new double[width];
        switch (Mode)
        {
            case StandardizeMode.PerFeature:
                if (values.Length != width)
                    throw new ArgumentException($"statistics cover {values.Length} features, asked for {width}", nameof(width));
                values.CopyTo(result, 0);
                break;
            case StandardizeMode.PerChannel:
                if (width % Channels != 0)
                    throw new ArgumentException($"{width} features do not split into {Channels} channels", nameof(width));
                int plane = width / Channels;
                for (int j = 0; j < width; j++) result[j] = values[j / plane];
                break;
            default:
                Array.Fill(result, none);
                break;
        }
        return result;
    }

    // Records compare arrays by reference; two preprocessings are the same when their numbers are.
    public bool Equals(Preprocessing? other) =>
        other is not null && Scale.Equals(other.Scale) && Mode == other.Mode && Channels == other.Channels &&
        Mean.AsSpan().SequenceEqual(other.Mean) && StdDev.AsSpan().SequenceEqual(other.StdDev);

    public override int GetHashCode() => HashCode.Combine(Scale, Mode, Channels, Mean.Length);
}

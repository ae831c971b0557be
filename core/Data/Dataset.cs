// An in-memory labelled dataset: row-major features [Count × Width] and integer class labels. The features are
// float32, or, from a byte-valued source (IDX images), the bytes themselves with a divisor: a batch's rows are widened
// and divided where they are read (by a first layer's packing, or into a copy), the same floats as dividing a float
// copy (the same IEEE division), reading a quarter of the memory. Whatever asks for the whole float array (Features, Row) gets it made once, and from then on
// every row comes from it, so a change made through it is seen everywhere.
using System.Numerics.Tensors;
using DistTrain.Core.Kernels;

namespace DistTrain.Core.Data;

public sealed class Dataset
{
    private float[]? _features;
    private readonly byte[]? _bytes;
    private ByteDivisor _divisor = ByteDivisor.One; // replaced whole (Volatile), never changed
    private readonly Lock _widening = new();

    public Dataset(float[] features, int[] labels, int width, int classes, string source)
    {
        ArgumentNullException.ThrowIfNull(features);
        Check(features.Length, labels, width, "features");
        _features = features;
        Labels = labels;
        Width = width;
        Classes = classes;
        Source = source;
    }

    private Dataset(byte[] values, ByteDivisor divisor, int[] labels, int width, int classes, string source)
    {
        _bytes = values;
        _divisor = divisor;
        Labels = labels;
        Width = width;
        Classes = classes;
        Source = source;
    }

    /// <summary>Byte-valued features (each the float value of its byte until <see cref="Normalization.Scale"/>
    /// divides them), kept as bytes.</summary>
    public static Dataset FromBytes(byte[] values, int[] labels, int width, int classes, string source, int[]? shape = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        Check(values.Length, labels, width, "values");
        return new Dataset(values, ByteDivisor.One, labels, width, classes, source) { Shape = shape };
    }

    private static void Check(long length, int[] labels, int width, string name)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (width <= 0) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be positive");
        if (length != labels.Length * (long)width)
            throw new ArgumentException(
                $"{name} has {length} values, expected {labels.Length} rows × {width} = {labels.Length * (long)width}", name);
    }

    /// <summary>Row-major [Count × Width] (made from the bytes, once, the first time it is asked for).</summary>
    public float[] Features => Volatile.Read(ref _features) ?? Widen();

    /// <summary>True while the features are held as bytes (nothing has asked for the float array).</summary>
    public bool HoldsBytes => Volatile.Read(ref _features) is null;
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

    /// <summary>The held bytes and the divisor each is read with, while the dataset holds bytes (false once the float
    /// array exists: then it alone is the data).</summary>
    public bool TryGetBytes(out ReadOnlySpan<byte> values, out ByteDivisor divisor)
    {
        bool held = TryGetByteArray(out byte[] array, out divisor);
        values = array;
        return held;
    }

    /// <summary>The held byte array itself (never changed, so safe to keep for a pass even if the floats get made
    /// meanwhile), and its divisor.</summary>
    internal bool TryGetByteArray(out byte[] values, out ByteDivisor divisor)
    {
        lock (_widening)
        {
            values = _features is null ? _bytes! : [];
            divisor = _features is null ? _divisor : ByteDivisor.One;
            return _features is null;
        }
    }

    /// <summary>Row <paramref name="index"/> into <paramref name="destination"/> (Width floats), without making the
    /// float array: from the bytes while the dataset holds them.</summary>
    public void CopyRow(int index, Span<float> destination)
    {
        if (Volatile.Read(ref _features) is { } features) features.AsSpan(index * Width, Width).CopyTo(destination);
        else ElementWise.Widen(_bytes.AsSpan(index * Width, Width), Volatile.Read(ref _divisor), destination);
    }

    /// <summary>In place: x ← x / divisor (true division). Held bytes only take the divisor (the division happens as
    /// rows are read); a second division, or one after the floats were made, divides the floats.</summary>
    internal void Divide(float divisor)
    {
        if (divisor == 1f) return;
        lock (_widening)
        {
            if (_features is null && _divisor.Value == 1f)
            {
                Volatile.Write(ref _divisor, new ByteDivisor(divisor));
                return;
            }
        }
        float[] features = Features;
        TensorPrimitives.Divide(features, divisor, features);
    }

    private float[] Widen()
    {
        lock (_widening)
        {
            if (_features is null)
            {
                // Uninitialised: every element is written next.
                var features = GC.AllocateUninitializedArray<float>(_bytes!.Length);
                ElementWise.Widen(_bytes, _divisor, features);
                Volatile.Write(ref _features, features);
            }
            return _features;
        }
    }

    /// <summary>
    /// The same rows with another class count (arrays shared, not copied: the float array, or the held bytes with
    /// their divisor, each copy then making its own floats if asked): train and test must agree on Classes even when
    /// one of them happens not to contain the highest label.
    /// </summary>
    public Dataset WithClasses(int classes) =>
        classes == Classes ? this
        : Volatile.Read(ref _features) is { } features ? new Dataset(features, Labels, Width, classes, Source) { Shape = Shape }
        : new Dataset(_bytes!, _divisor, Labels, Width, classes, Source) { Shape = Shape };
}

/// <summary>A training set and an optional held-out test set.</summary>
public sealed record DataSplit(Dataset Train, Dataset? Test)
{
    /// <summary>What was done to the raw features (DataLoader sets it), so a model trained on this data can save it.</summary>
    public Preprocessing? Preprocessing { get; init; }
}

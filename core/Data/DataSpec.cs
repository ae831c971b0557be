// Placeholder; replaced by the data layer.
namespace DistTrain.Core.Data;

public sealed class DataSpec
{
    public string Format { get; set; } = "idx";
    public string? Path { get; set; }
    public float Scale { get; set; } = 255;
    public bool Standardize { get; set; }
    public int Samples { get; set; } = 1000;
    public int Classes { get; set; } = 3;
    public int Features { get; set; } = 2;
    public double Noise { get; set; } = 0.2;
    public int Seed { get; set; } = 1;
}

public static class DataLoader
{
    public static DataSplit Load(DataSpec spec)
    {
        var r = new DeterministicRandom((ulong)spec.Seed);
        int n = spec.Samples, d = spec.Features;
        var x = new float[n * d]; var y = new int[n];
        for (int i = 0; i < n; i++) { y[i] = i % spec.Classes; for (int j = 0; j < d; j++) x[i * d + j] = (float)(r.NextGaussian() * spec.Noise + (j == y[i] % d ? 1 : 0)); }
        return new DataSplit(new Dataset(x, y, d, spec.Classes, "blobs"), null);
    }
}

public static class Sampler
{
    public static void EpochPermutation(ulong seed, int epoch, int count, int[] destination)
    {
        var r = new DeterministicRandom(seed * 31 + (ulong)epoch);
        for (int i = 0; i < count; i++) destination[i] = i;
        for (int i = count - 1; i > 0; i--) { int j = (int)(r.NextUInt64() % (ulong)(i + 1)); (destination[i], destination[j]) = (destination[j], destination[i]); }
    }
}

public static class Fingerprint
{
    public static string Compute(DataSplit split) => "placeholder";
}

// The real Fashion-MNIST files from Debian's dataset-fashion-mnist package, when installed on this machine.
using System.Diagnostics;
using DistTrain.Core.Data;

namespace DistTrain.Tests.Data;

/// <summary>xunit 2 has no runtime skip, so the attribute decides at discovery whether the data is there.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public FashionMnistFactAttribute()
    {
        if (!File.Exists(Path.Combine(DataSpec.DefaultIdxDirectory, MnistLayout.TrainImages + ".gz")))
            Skip = $"{DataSpec.DefaultIdxDirectory} not found: install the Debian package dataset-fashion-mnist";
    }
}

public class FashionMnistTests
{
    [FashionMnistFact]
    public void LoadsSixtyThousandAndTenThousandImages()
    {
        var clock = Stopwatch.StartNew();
        DataSplit split = DataLoader.Load(new DataSpec());
        TimeSpan elapsed = clock.Elapsed;

        Assert.Equal((60_000, 784, 10), (split.Train.Count, split.Train.Width, split.Train.Classes));
        Assert.Equal((10_000, 784, 10), (split.Test!.Count, split.Test.Width, split.Test.Classes));
        Assert.Equal(Enumerable.Range(0, 10), split.Train.Labels.Distinct().Order());
        Assert.Equal(Enumerable.Range(0, 10), split.Test.Labels.Distinct().Order());
        Assert.InRange(split.Train.Features.Max(), 0.99f, 1f);
        // Generous: a shared, loaded CI box pays heavily for first-touching 188 MB; this only catches pathologies.
        Assert.True(elapsed < TimeSpan.FromSeconds(20), $"loading took {elapsed}");
        Assert.Equal(Fingerprint.Compute(split), Fingerprint.Compute(DataLoader.Load(new DataSpec())));
    }
}

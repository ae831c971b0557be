// A worker's cached dataset in the current format is used as it is; one in the first format (float32 only, so its
// images would be held as floats, four times the memory and the reads) is removed and passed over, so the data is
// loaded or sent again and cached in the current format.
using DistTrain.Core.Data;
using DistTrain.Protos;
using DistTrain.Tests.Data;
using DistTrain.Worker;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistTrain.Tests.Distributed;

public class DatasetCacheVersionTests
{
    private static DataSplit Images()
    {
        var values = new byte[40 * 16];
        new Random(2).NextBytes(values);
        var train = Dataset.FromBytes(values, [.. Enumerable.Range(0, 40).Select(i => i % 4)], 16, 4, "images");
        Normalization.Scale(train, 255f);
        return new DataSplit(train, null);
    }

    [Fact]
    public void ACacheInTheCurrentFormatIsUsedAndOneInTheFirstIsFetchedAgain()
    {
        using var dir = new Infrastructure.TempDirectory();
        var options = new WorkerOptions { Coordinator = "http://127.0.0.1:1", Threads = 1, CacheDir = dir.Path };
        var store = new DatasetStore(options, NullLogger<DatasetStore>.Instance);
        var split = Images();
        string fingerprint = Fingerprint.Compute(split);
        var spec = new DataSpec { Format = "idx" };
        string cached = Path.Combine(dir.Path, $"{fingerprint}.dtds");

        byte[] old = DatasetPayloads.FirstVersion(split.Train);
        Assert.Equal(fingerprint, Fingerprint.Compute(DatasetCodec.Decode(old))); // a valid cache, only older
        File.WriteAllBytes(cached, old);
        Assert.Null(store.Find(spec, fingerprint)); // no --data: the coordinator will send it
        Assert.False(File.Exists(cached)); // and it will be cached in the current format

        File.WriteAllBytes(cached, DatasetCodec.Encode(split));
        var found = store.Find(spec, fingerprint);
        Assert.NotNull(found);
        Assert.StartsWith("cache ", found.Value.Source);
        Assert.True(found.Value.Split.Train.HoldsBytes);
        Assert.Equal(fingerprint, Fingerprint.Compute(found.Value.Split));
    }
}

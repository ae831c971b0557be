// The worker's dataset cache holds training data: its directory is 0700 (also when it existed wider) and a
// received dataset file is 0600, so other local users can neither list nor read it.
using DistTrain.Core.Data;
using DistTrain.Protos;
using DistTrain.Worker;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistTrain.Tests.Security;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class DatasetCachePermissionTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    [Fact]
    public async Task TheCacheDirectoryIsPrivateAndAReceivedDatasetReadableOnlyByItsOwner()
    {
        using var dir = new Infrastructure.TempDirectory();
        string cache = dir.File("cache");
        // An existing, world-readable cache directory is narrowed.
        Directory.CreateDirectory(cache);
        File.SetUnixFileMode(cache, Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        var options = new WorkerOptions { Coordinator = "http://127.0.0.1:1", Threads = 1, CacheDir = cache };
        using var session = new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance), NullLogger<WorkerSession>.Instance);
        var split = DataLoader.Load(new DataSpec { Format = "blobs", Samples = 200, Classes = 3, Features = 2, Seed = 3 });
        string fingerprint = Fingerprint.Compute(split);
        byte[] payload = DatasetCodec.Encode(split);
        var chunk = new DatasetChunk
        {
            ProtocolVersion = Protocol.Version, DatasetFingerprint = fingerprint, TotalBytes = payload.Length, Data = ByteString.CopyFrom(payload),
        };
        Assert.Equal(payload.Length, await session.ReceiveDatasetAsync(new OneChunk(chunk), default));

        Assert.Equal(Private, File.GetUnixFileMode(cache));
        string cached = Path.Combine(cache, $"{fingerprint}.dtds");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cached));
    }

    private sealed class OneChunk(DatasetChunk chunk) : IAsyncStreamReader<DatasetChunk>
    {
        private bool _done;
        public DatasetChunk Current => chunk;
        public Task<bool> MoveNext(CancellationToken cancellationToken) => Task.FromResult(!_done && (_done = true));
    }
}

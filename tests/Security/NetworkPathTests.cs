// Nothing a Prepare carries names a local path: shared-memory offers are opened only as a coordinator's files under
// the worker's --shared-memory-dir (pattern, exact names, no links), and a data spec's paths only by their base
// names inside the worker's own --data directory.
using System.Text.Json;
using DistTrain.Coordinator.Distributed;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Worker;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace DistTrain.Tests.Security;

public sealed class NetworkPathTests : IDisposable
{
    private static readonly DataSpec Data = new() { Format = "blobs", Samples = 200, Classes = 3, Features = 2, Seed = 3 };
    private static readonly ModelSpec Model = new()
    {
        Inputs = 2, Layers = [new() { Type = "linear", Units = 4 }, new() { Type = "linear", Units = 3 }],
    };
    private readonly string _root = Directory.CreateTempSubdirectory("disttrain-paths-root-").FullName;
    private readonly string _elsewhere = Directory.CreateTempSubdirectory("disttrain-paths-elsewhere-").FullName;

    private static int ParameterCount => new Network(Model).ParameterCount;

    private SharedMemoryOffer Offer(SharedMemoryHost host) => host.ForWorker("w1", 1).Offer;

    [Fact]
    public void TheCoordinatorsOwnOfferPassesOnlyUnderTheWorkersRoot()
    {
        using var host = SharedMemoryHost.Create(_root, ParameterCount, 2, _ => { }, bindCpus: false);
        var offer = Offer(host);
        SharedMemoryPaths.Check(offer, _root, "w1");
        SharedMemoryPaths.Check(offer, _root + "/", "w1");
        Refused(offer, _elsewhere, "w1", "only under its --shared-memory-dir");
        // Another worker's slots file is not this worker's.
        Refused(offer, _root, "w2", "only under its --shared-memory-dir");
        Refused(offer, _root, "../w1", "cannot name a slots file");
    }

    [Fact]
    public void OtherNamesDirectoriesAndDotDotAreRefused()
    {
        using var host = SharedMemoryHost.Create(_root, ParameterCount, 2, _ => { }, bindCpus: false);
        var offer = Offer(host);
        string directory = Path.GetDirectoryName(offer.WeightsPath)!;
        Refused(With(offer, o => o.WeightsPath = Path.Combine(_elsewhere, "weights")), _root, "w1", "only under");
        Refused(With(offer, o => o.WeightsPath = Path.Combine(directory, "passwd")), _root, "w1", "only under");
        Refused(With(offer, o => o.WeightsPath = Path.Combine(_root, "evil", "weights")), _root, "w1", "only under");
        Refused(With(offer, o => o.WeightsPath = Path.Combine(_root, "disttrain-1-xyz", "weights")), _root, "w1", "only under");
        Refused(With(offer, o => o.WeightsPath = $"{directory}/../{Path.GetFileName(directory)}/weights"), _root, "w1", "only under");
        Refused(With(offer, o => o.WeightsPath = "weights"), _root, "w1", "only under");
        Refused(With(offer, o => o.SlotsPath = Path.Combine(_root, "disttrain-1-00000000", "slots-w1")), _root, "w1", "not beside");
        Refused(With(offer, o => o.StepSocketPath = Path.Combine(directory, "other.sock")), _root, "w1", "only under");
        Refused(With(offer, o => o.StepSocketPath = "/run/docker.sock"), _root, "w1", "only under");
    }

    [Fact]
    public void SymbolicLinksAreRefused()
    {
        // A directory of the right name that links elsewhere, and a real one whose weights file is a link.
        string target = Directory.CreateDirectory(Path.Combine(_elsewhere, "target")).FullName;
        File.WriteAllBytes(Path.Combine(target, "weights"), new byte[64]);
        File.WriteAllBytes(Path.Combine(target, "slots-w1"), new byte[64]);
        string linked = Path.Combine(_root, "disttrain-4242-0badc0de");
        Directory.CreateSymbolicLink(linked, target);
        var offer = new SharedMemoryOffer
        {
            WeightsPath = Path.Combine(linked, "weights"), SlotsPath = Path.Combine(linked, "slots-w1"),
            Nonce = ByteString.CopyFrom(new byte[MappedFile.NonceBytes]), SlotCount = 1,
        };
        Refused(offer, _root, "w1", "is a symbolic link");

        string real = Directory.CreateDirectory(Path.Combine(_root, "disttrain-4243-0badc0de")).FullName;
        File.CreateSymbolicLink(Path.Combine(real, "weights"), Path.Combine(target, "weights"));
        File.WriteAllBytes(Path.Combine(real, "slots-w1"), new byte[64]);
        Refused(With(offer, o => (o.WeightsPath, o.SlotsPath) = (Path.Combine(real, "weights"), Path.Combine(real, "slots-w1"))),
            _root, "w1", "is a symbolic link");
    }

    [Fact]
    public async Task AWorkerOfferedAForeignFileLeavesItUntouchedAndUsesGrpc()
    {
        // A file that begins with the nonce, as the forged offer of the review did.
        byte[] nonce = Enumerable.Range(1, MappedFile.NonceBytes).Select(i => (byte)i).ToArray();
        string victim = Path.Combine(_elsewhere, "victim");
        byte[] original = [.. nonce, .. Enumerable.Repeat((byte)7, 1 << 16)];
        File.WriteAllBytes(victim, original);
        var options = new WorkerOptions { Coordinator = "http://127.0.0.1:1", Threads = 1, SharedMemoryDir = _root };
        using var session = new WorkerSession(options, new DatasetStore(options, NullLogger<DatasetStore>.Instance), NullLogger<WorkerSession>.Instance);
        var reply = await session.PrepareAsync(new PrepareRequest
        {
            ProtocolVersion = Protocol.Version, ModelSpecJson = JsonSerializer.Serialize(Model, TrainingConfig.Json),
            DataSpecJson = JsonSerializer.Serialize(Data, TrainingConfig.Json), DatasetFingerprint = Fingerprint.Compute(DataLoader.Load(Data)),
            MaxRequestBytes = 1 << 20, WorkerId = "w1",
            SharedMemory = new SharedMemoryOffer { WeightsPath = victim, SlotsPath = victim, Nonce = ByteString.CopyFrom(nonce), SlotCount = 1 },
        }, default);
        Assert.True(reply.DataPresent);
        Assert.False(reply.SharedMemory);
        Assert.Contains("offer refused", reply.SharedMemoryNote);
        Assert.Equal(original, File.ReadAllBytes(victim));
    }

    [Fact]
    public void DataSpecPathsAreOnlyBaseNamesInsideTheWorkersDataDirectory()
    {
        var fromNetwork = () => new DataSpec { Format = "csv", Path = "/etc/passwd", TestPath = "../../etc/shadow", LabelsPath = "/dev/zero" };
        Assert.Null(DatasetStore.LocalSpec(fromNetwork(), data: null));
        Assert.Null(DatasetStore.LocalSpec(new DataSpec { Format = "idx", Path = "/etc" }, data: ""));

        var local = DatasetStore.LocalSpec(fromNetwork(), _elsewhere)!;
        Assert.Equal(Path.Combine(_elsewhere, "passwd"), local.Path);
        Assert.Equal(Path.Combine(_elsewhere, "shadow"), local.TestPath);
        Assert.Equal(Path.Combine(_elsewhere, "zero"), local.LabelsPath);
        // A --data file is the training file; the others sit beside it.
        string train = Path.Combine(_elsewhere, "train.csv");
        Assert.Equal(train, DatasetStore.LocalSpec(fromNetwork(), train)!.Path);
        Assert.Equal(Path.Combine(_elsewhere, "shadow"), DatasetStore.LocalSpec(fromNetwork(), train)!.TestPath);
        // idx: the --data directory; a test directory the same as the training one stays it.
        var idx = DatasetStore.LocalSpec(new DataSpec { Format = "idx", Path = "/srv/x", TestPath = "/srv/x" }, _elsewhere)!;
        Assert.Equal((_elsewhere, _elsewhere), (idx.Path, idx.TestPath));
        Assert.Null(DatasetStore.LocalSpec(new DataSpec { Format = "csv", Path = "a.csv", TestPath = ".." }, _elsewhere));
        // Synthetic data needs no file: whatever the spec names is dropped.
        var blobs = DatasetStore.LocalSpec(new DataSpec { Format = "blobs", Path = "/etc/passwd", TestPath = "/fifo" }, data: null)!;
        Assert.Equal((null, null), (blobs.Path, blobs.TestPath));
    }

    private static SharedMemoryOffer With(SharedMemoryOffer offer, Action<SharedMemoryOffer> change)
    {
        var changed = offer.Clone();
        change(changed);
        return changed;
    }

    private static void Refused(SharedMemoryOffer offer, string root, string workerId, string why)
    {
        var e = Assert.Throws<SharedMemoryException>(() => SharedMemoryPaths.Check(offer, root, workerId));
        Assert.Contains(why, e.Message);
    }

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_elsewhere, recursive: true);
    }
}

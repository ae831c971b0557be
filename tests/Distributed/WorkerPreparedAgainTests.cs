// A request that waited for the compute lock while the worker was prepared again: computed when that Prepare only
// connected a new link (the coordinator reconnecting a closed TCP link), refused when it brought another model, other
// data, or — for a request on the bulk plane — another attachment (the files it names may be closed).
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Protos;
using DistTrain.Worker;

namespace DistTrain.Tests.Distributed;

public class WorkerPreparedAgainTests
{
    private sealed class Attachment : IBulkAttachment
    {
        public IGradientSlots Slots => throw new NotSupportedException();
        public int IndexCapacity => 0;
        public IReadOnlyList<int> OfferedCpus => [];
        public bool HasLink => false;
        public bool LinkOpen => false;
        public bool TryReadWeights(long step, Span<float> destination) => false;
        public bool TryReadIndices(long step, int start, Span<int> destination) => false;
        public bool TryClaim(long pool, int blockCount, out int block) => (block = -1) >= 0;
        public void CloseLink() { }
        public void Dispose() { }
    }

    private static StepWork Work(bool shared) => new(3, new ShardPlan(4, 2), [(0, 2)], shared ? null : [0, 1, 2, 3], 0,
        false, false, shared ? WeightsSource.SharedMemory : WeightsSource.Request, shared ? [0] : []);

    [Fact]
    public void OnlyAPrepareThatChangedWhatTheRequestUsesRefusesIt()
    {
        var spec = new ModelSpec { Inputs = 2, Layers = [new() { Type = "linear", Units = 2 }] };
        var data = new Dataset(new float[8], [0, 1, 0, 1], 2, 2, "test");
        var checkedWith = new WorkerSession.Prepared("{}", "f", new Network(spec), data) { Bulk = new Attachment() };

        // A new link only (the renewal keeps the model, the data and the attachment): both kinds are computed.
        var relinked = checkedWith with { TcpNote = "reconnected" };
        Assert.NotSame(checkedWith, relinked);
        Assert.True(WorkerSession.StillServes(checkedWith, relinked, Work(shared: false)));
        Assert.True(WorkerSession.StillServes(checkedWith, relinked, Work(shared: true)));

        // Another attachment: a request in the message is computed, one on the bulk plane refused.
        var reattached = checkedWith with { Bulk = new Attachment() };
        Assert.True(WorkerSession.StillServes(checkedWith, reattached, Work(shared: false)));
        Assert.False(WorkerSession.StillServes(checkedWith, reattached, Work(shared: true)));

        // Another model, other data, or no preparation at all: refused.
        Assert.False(WorkerSession.StillServes(checkedWith, checkedWith with { Network = new Network(spec) }, Work(shared: false)));
        Assert.False(WorkerSession.StillServes(checkedWith, checkedWith with { Train = new Dataset(new float[8], [0, 1, 0, 1], 2, 2, "test") }, Work(shared: false)));
        Assert.False(WorkerSession.StillServes(checkedWith, null, Work(shared: false)));
    }
}

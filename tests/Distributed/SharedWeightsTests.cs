// The shared weights file's pool counter and batch indices: claims through two mappings of the file (as two worker
// processes have) hand out every block exactly once, a finished or replaced pool gives nothing, and indices are
// read only under the step they were written with.
using DistTrain.Protos;

namespace DistTrain.Tests.Distributed;

public sealed class SharedWeightsTests : IDisposable
{
    private const int Parameters = 37, Capacity = 50;
    private readonly string _dir = Directory.CreateTempSubdirectory("disttrain-weights-test-").FullName;
    private readonly byte[] _nonce = Enumerable.Range(1, MappedFile.NonceBytes).Select(i => (byte)i).ToArray();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (SharedWeights Coordinator, SharedWeights Worker) Open()
    {
        string path = Path.Combine(_dir, "weights");
        var created = new SharedWeights(MappedFile.Create(path, SharedWeights.FileBytes(Parameters, Capacity), _nonce), Parameters, Capacity);
        var opened = new SharedWeights(MappedFile.Open(path, SharedWeights.FileBytes(Parameters, Capacity), _nonce, writable: true),
            Parameters, Capacity);
        return (created, opened);
    }

    [Fact]
    public void TwoMappingsClaimEveryBlockOfAPoolExactlyOnce()
    {
        var (a, b) = Open();
        using (a)
        using (b)
        {
            for (long pool = 1; pool <= 200; pool++)
            {
                int blocks = (int)(pool % 13) + 1;
                a.OpenPool(pool);
                var claims = new List<int>[2];
                using var go = new Barrier(2);
                var threads = new[] { a, b }.Select((file, t) => new Thread(() =>
                {
                    var mine = claims[t] = [];
                    go.SignalAndWait();
                    while (file.TryClaim(pool, blocks, out int block)) mine.Add(block);
                })).ToList();
                threads.ForEach(t => t.Start());
                threads.ForEach(t => t.Join());
                Assert.Equal(Enumerable.Range(0, blocks), claims[0].Concat(claims[1]).Order());
                // Each thread claims in order: the counter only moves forward.
                Assert.All(claims, c => Assert.Equal(c.Order(), c));
                // A finished pool has nothing left; a claim for the previous pool gets nothing from this one.
                Assert.False(b.TryClaim(pool, blocks, out _));
                a.OpenPool(pool + 1000);
                Assert.False(b.TryClaim(pool, blocks, out int none));
                Assert.Equal(-1, none);
            }
            Assert.Throws<ArgumentOutOfRangeException>(() => a.OpenPool(0));
            Assert.Throws<ArgumentOutOfRangeException>(() => a.OpenPool(SharedWeights.MaxPoolId + 1));
        }
    }

    [Fact]
    public void IndicesAreReadOnlyUnderTheStepTheyWereWrittenWith()
    {
        var (a, b) = Open();
        using (a)
        using (b)
        {
            var weights = Enumerable.Range(0, Parameters).Select(i => i * 0.5f).ToArray();
            var indices = Enumerable.Range(100, Capacity).ToArray();
            a.Write(7, weights, indices);
            var read = new int[10];
            Assert.True(b.TryReadIndices(7, 40, read));
            Assert.Equal(indices[40..], read);
            var readWeights = new float[Parameters];
            Assert.True(b.TryRead(7, readWeights));
            Assert.Equal(weights, readWeights);
            Assert.False(b.TryReadIndices(8, 0, read));
            Assert.Throws<ArgumentOutOfRangeException>(() => b.TryReadIndices(7, 41, read));
            Assert.Throws<ArgumentOutOfRangeException>(() => a.Write(8, weights, new int[Capacity + 1]));
            // Weights alone (for workers that get their indices in the requests) leave the stamp valid for both.
            a.Write(9, weights);
            Assert.True(b.TryRead(9, readWeights));
        }
    }
}

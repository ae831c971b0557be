using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Tests.Core;

public class ReductionTests
{
    private static (Network Network, Dataset Data, float[] Parameters) Problem(int samples, int seed)
    {
        var spec = GradientCheckTests.Spec("relu", "softmax_cross_entropy", inputs: 37, hidden: 19, outputs: 7);
        var network = new Network(spec);
        var random = new Random(seed);
        var features = new float[samples * 37];
        for (int i = 0; i < features.Length; i++) features[i] = (float)random.NextDouble();
        var labels = Enumerable.Range(0, samples).Select(_ => random.Next(7)).ToArray();
        return (network, new Dataset(features, labels, 37, 7, "random"), network.CreateParameters(5));
    }

    private static float[] BatchGradient(Network network, Dataset data, float[] parameters, int[] batch, int shardSize, int threads)
    {
        using var source = new LocalGradientSource(network, data, threads);
        var result = new GradientResult(network.ParameterCount);
        var request = new GradientRequest { Parameters = parameters, BatchIndices = batch, Plan = new ShardPlan(batch.Length, shardSize) };
        Assert.True(source.ComputeAsync(request, result, default).IsCompletedSuccessfully); // local mode is synchronous
        Assert.Equal(batch.Length, result.TotalSamples());
        return result.GradientSum;
    }

    [Theory]
    [InlineData(203, 16)] // 13 shards, the last one short
    [InlineData(203, 7)]  // 29 shards
    [InlineData(64, 64)]  // a single shard
    [InlineData(100, 3)]  // 34 shards, 1 sample in the last
    public void SummedGradientIsBitIdenticalForOneTwoAndFourThreads(int batchSize, int shardSize)
    {
        var (network, data, parameters) = Problem(300, batchSize + shardSize);
        var batch = Enumerable.Range(0, batchSize).Select(i => (i * 7 + 3) % data.Count).ToArray();
        var one = BatchGradient(network, data, parameters, batch, shardSize, threads: 1);
        var two = BatchGradient(network, data, parameters, batch, shardSize, threads: 2);
        var four = BatchGradient(network, data, parameters, batch, shardSize, threads: 4);
        Assert.Equal(one.Select(BitConverter.SingleToInt32Bits), two.Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(one.Select(BitConverter.SingleToInt32Bits), four.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void SummedGradientEqualsTheSumOfPerShardGradients()
    {
        var (network, data, parameters) = Problem(120, 3);
        var batch = Enumerable.Range(0, 101).ToArray();
        var sum = BatchGradient(network, data, parameters, batch, shardSize: 10, threads: 2);
        var workspace = new NetworkWorkspace(network, 10);
        var expected = new double[network.ParameterCount];
        var shard = new float[network.ParameterCount];
        for (int start = 0; start < batch.Length; start += 10)
        {
            workspace.ComputeGradient(parameters, data, batch.AsSpan(start, Math.Min(10, batch.Length - start)), shard, out _);
            for (int i = 0; i < shard.Length; i++) expected[i] += shard[i];
        }
        for (int i = 0; i < sum.Length; i++)
            Assert.True(Math.Abs(sum[i] - expected[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"element {i}: {sum[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(32)]
    [InlineData(33)]
    public void StreamingReducerEqualsInPlaceTreeForAnyAlignedBlocking(int leaves)
    {
        const int length = 37;
        float[][] Leaves() => Enumerable.Range(0, leaves)
            .Select(l => Enumerable.Range(0, length).Select(i => (float)Math.Sin(l * 100 + i) * (l + 1) * 1e3f).ToArray()).ToArray();
        var tree = Leaves();
        DistTrain.Tests.Core.ReferenceTree.ReduceInPlace(tree, leaves, length);

        foreach (int block in new[] { 1, 2, 4, 8, 16, 64 })
        {
            var source = Leaves();
            int blocks = (leaves + block - 1) / block;
            var sums = new float[blocks][];
            var reducer = new PairwiseTreeReducer(length, block);
            for (int b = 0; b < blocks; b++)
            {
                sums[b] = new float[length];
                Assert.True(GradientReduction.IsAlignedBlock(b * block, Math.Min(block, leaves - b * block), leaves));
                reducer.Begin(sums[b]);
                for (int s = b * block; s < Math.Min(leaves, (b + 1) * block); s++)
                {
                    source[s].CopyTo(reducer.NextLeaf());
                    reducer.CommitLeaf();
                }
                reducer.Finish();
            }
            DistTrain.Tests.Core.ReferenceTree.ReduceInPlace(sums, blocks, length);
            Assert.Equal(tree[0].Select(BitConverter.SingleToInt32Bits), sums[0].Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void AlignedBlockCheckRejectsMisalignedBlocks()
    {
        Assert.True(GradientReduction.IsAlignedBlock(4, 4, 13));
        Assert.True(GradientReduction.IsAlignedBlock(12, 1, 13));
        Assert.True(GradientReduction.IsAlignedBlock(8, 5, 13));  // truncated final block of 8
        Assert.False(GradientReduction.IsAlignedBlock(2, 4, 13)); // not aligned
        Assert.False(GradientReduction.IsAlignedBlock(4, 3, 13)); // not a power of two and not final
        Assert.False(GradientReduction.IsAlignedBlock(12, 2, 13)); // past the end
    }
}

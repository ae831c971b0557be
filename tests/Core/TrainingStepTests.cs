using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Optim;
using DistTrain.Core.Training;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Core;

public class TrainingStepTests
{
    private static (Network, Dataset) Problem()
    {
        var spec = GradientCheckTests.Spec("relu", "softmax_cross_entropy", inputs: 23, hidden: 17, outputs: 5);
        var network = new Network(spec);
        var random = new Random(9);
        var features = new float[500 * 23];
        for (int i = 0; i < features.Length; i++) features[i] = (float)(random.NextDouble() * 2 - 1);
        var labels = Enumerable.Range(0, 500).Select(i => i % 5).ToArray();
        return (network, new Dataset(features, labels, 23, 5, "random"));
    }

    private static TrainingStep Step(Network network, Dataset data, IGradientSource source, StepOptions options, float lr = 0.01f) =>
        new(network, network.CreateParameters(3),
            OptimizerFactory.Create(new OptimizerSpec { Type = "sgd", LearningRate = lr }, network.ParameterCount),
            ScheduleFactory.Create(new ScheduleSpec(), lr, 100), options, source);

    /// <summary>A source that hands back the sum however it is asked: the step then takes the mean itself.</summary>
    private sealed class SumOnly(IGradientSource inner) : IGradientSource
    {
        public ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
        {
            int meanOf = request.MeanOf;
            request.MeanOf = 0;
            try { return inner.ComputeAsync(request, result, cancellationToken); }
            finally { request.MeanOf = meanOf; }
        }
    }

    [Theory]
    [InlineData(1, 64)]
    [InlineData(2, 100)]
    [InlineData(2, 128)]
    public async Task TheMeanTakenInTheTreesLastPassGivesTheWeightsOfTakingItAfter(int threads, int batch)
    {
        var (network, data) = Problem();
        var options = new StepOptions { ShardSize = 16, Threads = threads };
        using var fused = new LocalGradientSource(network, data, threads);
        using var plain = new LocalGradientSource(network, data, threads);
        var a = Step(network, data, fused, options);
        var b = Step(network, data, new SumOnly(plain), options);
        var random = new Random(batch);
        // The local source does average when asked (else this would compare the same path twice).
        var request = new GradientRequest
        {
            Parameters = network.CreateParameters(3), BatchIndices = Enumerable.Range(0, batch).ToArray(),
            Plan = new ShardPlan(batch, 16), MeanOf = batch,
        };
        var result = new GradientResult(network.ParameterCount);
        await fused.ComputeAsync(request, result, default);
        Assert.True(result.IsMean);
        Assert.False(result.HasSquares); // none asked for
        var mean = (float[])result.GradientSum.Clone();
        request.NormSlices = [.. network.Groups.Select(g => (g.Offset, g.Length))];
        await fused.ComputeAsync(request, result, default);
        Assert.True(result.HasSquares); // and so the steps below compare the norms of the two paths
        request.NormSlices = null;
        request.MeanOf = 0;
        await fused.ComputeAsync(request, result, default);
        Assert.False(result.IsMean);
        Assert.Equal(result.GradientSum.Select(v => BitConverter.SingleToInt32Bits(v / batch)), mean.Select(BitConverter.SingleToInt32Bits));
        for (int step = 0; step < 6; step++)
        {
            // The last batch of an epoch is shorter: a count that is not the others'.
            var indices = Enumerable.Range(0, step == 5 ? batch / 2 + 3 : batch).Select(_ => random.Next(data.Count)).ToArray();
            var fusedOutcome = await a.RunAsync(indices);
            var (norm, layers) = (fusedOutcome.GradientNorm, fusedOutcome.LayerNorms.ToArray());
            var plainOutcome = await b.RunAsync(indices);
            Assert.True(a.MeanGradient.SequenceEqual(b.MeanGradient), $"step {step}: the averaged gradients differ");
            // The norms measured in the tree's last pass (a's) are those of measuring the mean after it (b's).
            Assert.Equal(BitConverter.DoubleToInt64Bits(plainOutcome.GradientNorm), BitConverter.DoubleToInt64Bits(norm));
            Assert.Equal(plainOutcome.LayerNorms.ToArray().Select(BitConverter.DoubleToInt64Bits), layers.Select(BitConverter.DoubleToInt64Bits));
        }
        Assert.Equal(b.Parameters.Select(BitConverter.SingleToInt32Bits), a.Parameters.Select(BitConverter.SingleToInt32Bits));
    }

    /// <summary>Records each request's bfloat16 weights and the weights they should encode; poisons chosen steps.</summary>
    private sealed class Bf16Recorder(IGradientSource inner, params long[] poisoned) : IGradientSource
    {
        public List<(long Step, byte[] Sent, float[] Weights)> Requests { get; } = [];

        public async ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
        {
            Requests.Add((request.Step, request.Bf16Parameters.ToArray(), (float[])request.Parameters.Clone()));
            await inner.ComputeAsync(request, result, cancellationToken);
            if (!poisoned.Contains(request.Step)) return;
            // A source that changes the sum after the tree drops the squares taken there.
            result.GradientSum[0] = float.NaN;
            result.HasSquares = false;
        }
    }

    private static byte[] EncodeBf16(float[] weights)
    {
        var bits = new ushort[weights.Length];
        DistTrain.Core.Kernels.BFloat16.Encode(weights, bits);
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
    }

    [Theory]
    [InlineData("sgd", 23, 17, 1)] // a few hundred weights: the serial update, in pieces
    [InlineData("adam", 784, 256, 2)] // 200k weights on two threads: pieces told from both
    [InlineData("adam", 784, 256, 1)]
    public async Task TheOptimizerEncodesTheBf16WeightsAsItWritesThem(string optimizer, int inputs, int hidden, int threads)
    {
        var network = new Network(GradientCheckTests.Spec("relu", "softmax_cross_entropy", inputs: inputs, hidden: hidden, outputs: 5));
        var random = new Random(4);
        var features = new float[200 * inputs];
        for (int i = 0; i < features.Length; i++) features[i] = (float)(random.NextDouble() * 2 - 1);
        var data = new Dataset(features, Enumerable.Range(0, 200).Select(i => i % 5).ToArray(), inputs, 5, "random");
        using var local = new LocalGradientSource(network, data, threads);
        // Step 3's gradient is not finite: it is skipped and leaves the weights, and their encoding, as they were.
        var source = new Bf16Recorder(local, 3);
        var step = new TrainingStep(network, network.CreateParameters(3),
            OptimizerFactory.Create(new OptimizerSpec { Type = optimizer, LearningRate = 0.01f }, network.ParameterCount),
            ScheduleFactory.Create(new ScheduleSpec(), 0.01f, 100), new StepOptions { ShardSize = 16, Threads = threads, Bf16Wire = true }, source);
        for (int k = 0; k < 6; k++)
            Assert.Equal(k == 3, (await step.RunAsync(Enumerable.Range(0, 48).Select(_ => random.Next(data.Count)).ToArray())).Skipped);
        Assert.Empty(source.Requests[0].Sent); // nothing encoded before the first step
        foreach (var (number, sent, weights) in source.Requests.Skip(1))
            Assert.True(EncodeBf16(weights).AsSpan().SequenceEqual(sent), $"step {number}: the encoding is not of the weights");
    }

    [Fact]
    public async Task WithBatchNormTheSourceEncodesTheBf16WeightsItself()
    {
        // The running statistics are written after the optimizer: an encoding made as it wrote would be stale there.
        var spec = System.Text.Json.JsonSerializer.Deserialize<ModelSpec>("""
            { "input": [1, 4, 4], "layers": [ { "type": "conv2d", "channels": 2, "kernel": 3, "padding": 1 },
              { "type": "batchnorm2d" }, { "type": "flatten" }, { "type": "linear", "units": 3 } ], "loss": "softmax_cross_entropy" }
            """, TrainingConfig.Json)!;
        var network = new Network(spec);
        var random = new Random(2);
        var data = new Dataset(Enumerable.Range(0, 40 * 16).Select(_ => (float)random.NextDouble()).ToArray(),
            Enumerable.Range(0, 40).Select(i => i % 3).ToArray(), 16, 3, "random");
        using var local = new LocalGradientSource(network, data, 1);
        var source = new Bf16Recorder(local);
        var step = new TrainingStep(network, network.CreateParameters(1),
            OptimizerFactory.Create(new OptimizerSpec { Type = "adam", LearningRate = 0.01f }, network.ParameterCount),
            ScheduleFactory.Create(new ScheduleSpec(), 0.01f, 100), new StepOptions { ShardSize = 8, Bf16Wire = true }, source);
        for (int k = 0; k < 3; k++) await step.RunAsync(Enumerable.Range(0, 16).ToArray());
        Assert.All(source.Requests, r => Assert.Empty(r.Sent));
    }

    [Fact]
    public void MeanOverAPowerOfTwoHasTheDivisionsBits()
    {
        // Normal, subnormal-producing, huge, signed-zero, infinite and NaN sums; counts 1 … 2³⁰ and a few others.
        var random = new Random(17);
        var sums = Enumerable.Range(0, 4099).Select(_ => BitConverter.Int32BitsToSingle(random.Next(int.MinValue, int.MaxValue)))
            .Concat([0f, -0f, float.Epsilon, -float.Epsilon, float.MaxValue, float.PositiveInfinity, float.NaN, 1e-38f, 3e-39f])
            .ToArray();
        var mean = new float[sums.Length];
        foreach (int count in Enumerable.Range(0, 31).Select(k => 1 << k).Concat([3, 100, 1000, 10000]))
        {
            TrainingStep.Mean(sums, count, mean);
            for (int i = 0; i < sums.Length; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(sums[i] / count), BitConverter.SingleToInt32Bits(mean[i]));
        }
    }

    [Fact]
    public async Task StepAppliesTheBatchMeanGradient()
    {
        var (network, data) = Problem();
        using var source = new LocalGradientSource(network, data, 2);
        var step = Step(network, data, source, new StepOptions { ShardSize = 16 });
        var before = step.Parameters.ToArray();
        var batch = Enumerable.Range(0, 77).ToArray();
        var outcome = (await step.RunAsync(batch));

        var workspace = new NetworkWorkspace(network, 77);
        var sum = new float[network.ParameterCount];
        workspace.ComputeGradient(before, data, batch, sum, out _);
        for (int i = 0; i < sum.Length; i++)
        {
            double expected = before[i] - 0.01 * (sum[i] / 77.0);
            Assert.True(Math.Abs(step.Parameters[i] - expected) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"parameter {i}");
        }
        Assert.Equal(77, outcome.Samples);
        Assert.Equal(1, step.Step);
        Assert.False(outcome.Clipped);
    }

    [Fact]
    public async Task ClippingScalesTheAveragedGradientToTheThreshold()
    {
        var (network, data) = Problem();
        using var source = new LocalGradientSource(network, data, 1);
        var step = Step(network, data, source, new StepOptions { ShardSize = 16 });
        var batch = Enumerable.Range(0, 64).ToArray();
        var unclippedNorm = (await step.RunAsync(batch)).GradientNorm;

        using var source2 = new LocalGradientSource(network, data, 1);
        var clipped = Step(network, data, source2, new StepOptions { ShardSize = 16, ClipNorm = unclippedNorm / 4 });
        var outcome = (await clipped.RunAsync(batch));
        Assert.True(outcome.Clipped);
        Assert.Equal(1, clipped.ClipEvents);
        Assert.Equal(unclippedNorm, outcome.GradientNorm, 6); // reported before clipping
        Assert.Equal(unclippedNorm / 4, Clipping.GlobalNorm(clipped.MeanGradient), 5);
    }

    [Fact]
    public async Task NonFiniteGradientSkipsTheStepOrStops()
    {
        var (network, _) = Problem();
        var poisoned = new float[500 * 23];
        Array.Fill(poisoned, float.NaN);
        var data = new Dataset(poisoned, Enumerable.Range(0, 500).Select(i => i % 5).ToArray(), 23, 5, "nan");
        using var source = new LocalGradientSource(network, data, 1);
        var skip = Step(network, data, source, new StepOptions { ShardSize = 16 });
        var before = skip.Parameters.ToArray();
        var outcome = (await skip.RunAsync(Enumerable.Range(0, 32).ToArray()));
        Assert.True(outcome.Skipped);
        Assert.Equal(1, skip.SkippedSteps);
        Assert.Equal(before, skip.Parameters);

        var stop = Step(network, data, source, new StepOptions { ShardSize = 16, NonFinite = NonFinitePolicy.Stop });
        await Assert.ThrowsAsync<NonFiniteGradientException>(async () => await stop.RunAsync(Enumerable.Range(0, 32).ToArray()));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task SteadyStateStepsAllocateNothing(int threads)
    {
        var (network, data) = Problem();
        using var source = new LocalGradientSource(network, data, threads);
        var step = Step(network, data, source, new StepOptions { ShardSize = 32 });
        var batch = new ArraySegment<int>(Enumerable.Range(0, 200).ToArray());
        for (int i = 0; i < 60; i++) await step.RunAsync(batch); // past tiered-JIT recompilation
        // Per-thread counters: other tests run in parallel in this process.
        long allocated = Allocations.SteadyState(() =>
        {
            for (int i = 0; i < 20; i++)
            {
                var pending = step.RunAsync(batch);
                Assert.True(pending.IsCompletedSuccessfully); // local mode completes synchronously
            }
        }, () => source.HelperThreadAllocatedBytes);
        Assert.True(allocated == 0, $"20 steps allocated {allocated} bytes");
    }
}

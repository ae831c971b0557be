// Bit-level properties of every optimizer: the SIMD and scalar paths agree exactly, a restore from saved State
// continues bit-identically, and a Step allocates nothing.
using DistTrain.Core;
using DistTrain.Core.Kernels;
using DistTrain.Core.Optim;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Optim;

public class OptimizerDeterminismTests
{
    [Theory]
    [MemberData(nameof(OptimizerVariants.Names), MemberType = typeof(OptimizerVariants))]
    public void VectorAndScalarPathsGiveTheSameBits(string variant)
    {
        // 1049 = 65·16 + 8 + 1 runs the 512-bit, 256-bit and scalar loops; length-1 optimizers run only the
        // scalar loop. Every element must come out the same either way.
        const int n = 1049;
        var random = new Random(7);
        float[] w = OptimizerVariants.Uniform(random, n);
        float[] single = (float[])w.Clone();
        var whole = OptimizerVariants.Create(variant, n);
        var perElement = Enumerable.Range(0, n).Select(_ => OptimizerVariants.Create(variant, 1)).ToArray();
        float lr = OptimizerVariants.Specs[variant]().LearningRate;
        for (int step = 0; step < 3; step++)
        {
            float[] g = OptimizerVariants.Uniform(random, n);
            whole.Step(w, g, lr);
            for (int i = 0; i < n; i++) perElement[i].Step(single.AsSpan(i, 1), g.AsSpan(i, 1), lr);
        }
        Assert.Equal(single, w);
        foreach (var (key, buffer) in whole.State)
            Assert.Equal(perElement.Select(o => o.State[key][0]).ToArray(), buffer);
    }

    [Theory]
    [MemberData(nameof(OptimizerVariants.Names), MemberType = typeof(OptimizerVariants))]
    public void ThreadsDoNotChangeTheBits(string variant)
    {
        // Two threads' worth: eight whole pieces and a ragged last one (of 37 elements: vector and scalar tails inside a piece).
        const int n = 2 * ElementWise.ParallelUpdateMinimum + 37;
        var random = new Random(5);
        float[] initial = OptimizerVariants.Uniform(random, n);
        float[][] gradients = [.. Enumerable.Range(0, 4).Select(_ => OptimizerVariants.Uniform(random, n))];
        float lr = OptimizerVariants.Specs[variant]().LearningRate;
        var one = OptimizerVariants.Create(variant, n);
        float[] w1 = (float[])initial.Clone();
        foreach (var g in gradients) one.Step(w1, g, lr);
        foreach (int threads in new[] { 2, 3, 8 })
        {
            var many = OptimizerVariants.Create(variant, n);
            many.Threads = threads;
            float[] w = (float[])initial.Clone();
            foreach (var g in gradients) many.Step(w, g, lr);
            Assert.Equal(w1.Select(BitConverter.SingleToUInt32Bits), w.Select(BitConverter.SingleToUInt32Bits));
            foreach (var (key, buffer) in one.State)
                Assert.Equal(buffer.Select(BitConverter.SingleToUInt32Bits), many.State[key].Select(BitConverter.SingleToUInt32Bits));
        }
    }

    [Theory]
    [MemberData(nameof(OptimizerVariants.Names), MemberType = typeof(OptimizerVariants))]
    public void RestoredStateContinuesBitIdentically(string variant)
    {
        const int n = 1031;
        var random = new Random(11);
        float[] initial = OptimizerVariants.Uniform(random, n);
        float[][] gradients = [.. Enumerable.Range(0, 5).Select(_ => OptimizerVariants.Uniform(random, n))];
        float lr = OptimizerVariants.Specs[variant]().LearningRate;

        var uninterrupted = OptimizerVariants.Create(variant, n);
        float[] w1 = (float[])initial.Clone();
        foreach (var g in gradients) uninterrupted.Step(w1, g, lr);

        var first = OptimizerVariants.Create(variant, n);
        float[] w2 = (float[])initial.Clone();
        for (int s = 0; s < 2; s++) first.Step(w2, gradients[s], lr);
        // What a checkpoint does: copy the live buffers out, later copy them back into a fresh optimizer.
        var saved = first.State.ToDictionary(kv => kv.Key, kv => (float[])kv.Value.Clone());
        var resumed = OptimizerVariants.Create(variant, n);
        var liveBefore = resumed.State.ToDictionary(kv => kv.Key, kv => kv.Value);
        OptimizerState.Restore(resumed, saved, first.StepCount);
        foreach (var (key, buffer) in liveBefore) Assert.Same(buffer, resumed.State[key]);
        for (int s = 2; s < 5; s++) resumed.Step(w2, gradients[s], lr);

        Assert.Equal(w1, w2);
        Assert.Equal(uninterrupted.StepCount, resumed.StepCount);
        foreach (var (key, buffer) in uninterrupted.State) Assert.Equal(buffer, resumed.State[key]);
    }

    [Fact]
    public void RestoreRejectsStateOfAnotherOptimizerOrSize()
    {
        var adam = new Adam(4);
        var wrongKeys = new Dictionary<string, float[]> { ["momentum"] = new float[4] };
        var wrongLength = new Dictionary<string, float[]> { ["m"] = new float[4], ["v"] = new float[3] };
        var missing = new Dictionary<string, float[]> { ["m"] = new float[4] };
        Assert.Contains("'momentum'", Assert.Throws<UserInputException>(() => OptimizerState.Restore(adam, wrongKeys, 1)).Message);
        Assert.Contains("'v' must have 4 values, found 3", Assert.Throws<UserInputException>(() => OptimizerState.Restore(adam, wrongLength, 1)).Message);
        Assert.Contains("lacks optimizer state 'v'", Assert.Throws<UserInputException>(() => OptimizerState.Restore(adam, missing, 1)).Message);
        Assert.Equal(0, adam.StepCount);
    }

    [Theory]
    [MemberData(nameof(OptimizerVariants.Names), MemberType = typeof(OptimizerVariants))]
    public void StepDoesNotAllocate(string variant)
    {
        const int n = 1031;
        var random = new Random(3);
        float[] w = OptimizerVariants.Uniform(random, n, 0.1f), g = OptimizerVariants.Uniform(random, n, 0.1f);
        var optimizer = OptimizerVariants.Create(variant, n);
        float lr = 1e-4f;
        for (int s = 0; s < 50; s++) optimizer.Step(w, g, lr); // let tiered JIT settle
        Assert.Equal(0, Allocations.SteadyState(() =>
        {
            for (int s = 0; s < 100; s++) optimizer.Step(w, g, lr);
        }));
    }

    [Theory]
    [MemberData(nameof(OptimizerVariants.Names), MemberType = typeof(OptimizerVariants))]
    public void ParallelStepDoesNotAllocate(string variant)
    {
        const int n = 2 * ElementWise.ParallelUpdateMinimum + 5;
        var random = new Random(3);
        float[] w = OptimizerVariants.Uniform(random, n, 0.1f), g = OptimizerVariants.Uniform(random, n, 0.1f);
        var optimizer = OptimizerVariants.Create(variant, n);
        optimizer.Threads = 2;
        Assert.Equal(0, Allocations.SteadyState(() =>
        {
            for (int s = 0; s < 20; s++) optimizer.Step(w, g, 1e-4f);
        }, static () => GemmWorkers.HelperAllocatedBytes));
    }

    [Fact]
    public void StepRejectsMismatchedBuffers()
    {
        var sgd = new Sgd(4);
        Assert.Throws<ArgumentException>(() => sgd.Step(new float[4], new float[3], 0.1f));
        Assert.Throws<ArgumentException>(() => sgd.Step(new float[5], new float[5], 0.1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => sgd.Step(new float[4], new float[4], float.NaN));
    }
}

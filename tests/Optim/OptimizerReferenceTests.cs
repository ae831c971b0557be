// Each optimizer variant's first three steps against the float64 reference of its published rule, on random
// parameters and gradients of awkward lengths.
using DistTrain.Core.Optim;

namespace DistTrain.Tests.Optim;

public class OptimizerReferenceTests
{
    [Theory]
    [MemberData(nameof(OptimizerVariants.NamesAndLengths), MemberType = typeof(OptimizerVariants))]
    public void FirstThreeStepsMatchFloat64Reference(string variant, int n)
    {
        var spec = OptimizerVariants.Specs[variant]();
        var optimizer = OptimizerFactory.Create(spec, n);
        var reference = new ReferenceOptimizer(spec, n);
        var random = new Random(1234 + n);
        float[] w = OptimizerVariants.Uniform(random, n);
        double[] expected = [.. w.Select(x => (double)x)];

        for (int step = 1; step <= 3; step++)
        {
            float[] g = OptimizerVariants.Uniform(random, n);
            optimizer.Step(w, g, spec.LearningRate);
            reference.Step(expected, g, spec.LearningRate);
            Assert.Equal(step, optimizer.StepCount);
            AssertClose(expected, w, $"{variant} parameters after step {step}");
            Assert.Equal(reference.State.Keys.Order(), optimizer.State.Keys.Order());
            foreach (var (key, values) in reference.State)
                AssertClose(values, optimizer.State[key], $"{variant} state '{key}' after step {step}");
        }
    }

    /// <summary>Relative 1e-5, floored at a tenth of the buffer's largest magnitude so that an element near 0
    /// (a difference of two O(1) numbers) is judged on the scale its float32 error actually has.</summary>
    internal static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double floor = 0.1 * expected.Select(Math.Abs).DefaultIfEmpty(0).Max();
        for (int i = 0; i < expected.Length; i++)
        {
            double tolerance = 1e-5 * Math.Max(Math.Abs(expected[i]), floor);
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance,
                $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }

    [Fact]
    public void AdamFirstStepMovesEachWeightByTheLearningRate()
    {
        // Closed form: at t = 1, m̂ = g and v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr·sign(g).
        var adam = new Adam(3, epsilon: 1e-8f);
        float[] w = [1f, -2f, 0.5f];
        adam.Step(w, [0.3f, -4f, 1e-3f], 0.01f);
        Assert.Equal(0.99f, w[0], 1e-6f);
        Assert.Equal(-1.99f, w[1], 1e-6f);
        Assert.Equal(0.49f, w[2], 1e-6f);
    }

    [Fact]
    public void AdamWDecaysWeightsEvenWithZeroGradient()
    {
        var adamW = new Adam(1, weightDecay: 0.5f, decoupledWeightDecay: true);
        var adam = new Adam(1, weightDecay: 0.5f, decoupledWeightDecay: false);
        float[] w1 = [2f], w2 = [2f];
        adamW.Step(w1, [0f], 0.1f);
        adam.Step(w2, [0f], 0.1f);
        Assert.Equal(2f * (1f - 0.1f * 0.5f), w1[0], 1e-6f); // decoupled: pure shrink, no Adam normalisation
        Assert.Equal(2f - 0.1f, w2[0], 1e-5f);               // L2: the gradient λw is normalised to ≈ lr·sign
        Assert.Equal("adamw", adamW.Name);
        Assert.Equal("adam", adam.Name);
    }
}

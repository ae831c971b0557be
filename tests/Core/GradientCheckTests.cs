using DistTrain.Core.Data;
using DistTrain.Core.Model;

namespace DistTrain.Tests.Core;

// Every layer × loss combination: the float64 reference against central finite differences (≤ 1e-6), and the
// float32 SIMD core against the same finite differences (≤ 1e-3), on shapes that are not multiples of any vector
// width.
public class GradientCheckTests
{
    public static IEnumerable<object[]> Combinations()
    {
        string[] activations = ["relu", "sigmoid", "tanh", "none"];
        string[] losses = ["softmax_cross_entropy", "mean_squared_error", "multiclass_hinge", "binary_cross_entropy_with_logits"];
        foreach (var a in activations)
            foreach (var l in losses)
                yield return [a, l];
        yield return ["tanh-input", "softmax_cross_entropy"]; // a stand-alone activation on the input
        yield return ["relu", "binary_cross_entropy_with_logits-1"]; // one output, labels 0/1
    }

    internal static ModelSpec Spec(string activation, string loss, int inputs, int hidden, int outputs)
    {
        var layers = new List<LayerSpec>();
        if (activation == "tanh-input") layers.Add(new LayerSpec { Type = "tanh" });
        layers.Add(new LayerSpec { Type = "linear", Units = hidden });
        string act = activation == "tanh-input" ? "sigmoid" : activation;
        if (act != "none") layers.Add(new LayerSpec { Type = act });
        layers.Add(new LayerSpec { Type = "linear", Units = hidden + 6 });
        if (act != "none") layers.Add(new LayerSpec { Type = act });
        layers.Add(new LayerSpec { Type = "linear", Units = outputs });
        return new ModelSpec { Inputs = inputs, Layers = layers, Loss = loss, Init = "glorot" };
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void GradientsMatchFiniteDifferences(string activation, string lossName)
    {
        bool binaryOne = lossName.EndsWith("-1", StringComparison.Ordinal);
        string loss = binaryOne ? lossName[..^2] : lossName;
        var random = new Random(activation.Length * 31 + lossName.Length);
        int inputs = 7 + random.Next(12), hidden = 9 + random.Next(10), rows = 13 + random.Next(8);
        int outputs = binaryOne ? 1 : 5;
        int classes = binaryOne ? 2 : outputs;
        var spec = Spec(activation, loss, inputs, hidden, outputs);
        var network = new Network(spec);
        var parameters = network.CreateParameters(seed: 11);
        for (int i = 0; i < parameters.Length; i++) parameters[i] += (float)(0.05 * (random.NextDouble() - 0.5));

        var features = new float[rows * inputs];
        for (int i = 0; i < features.Length; i++) features[i] = (float)(random.NextDouble() * 4 - 2);
        var labels = Enumerable.Range(0, rows).Select(_ => random.Next(classes)).ToArray();
        var data = new Dataset(features, labels, inputs, classes, "gradient-check");
        var indices = Enumerable.Range(0, rows).ToArray();

        var workspace = new NetworkWorkspace(network, rows);
        var gradient = new float[network.ParameterCount];
        workspace.ComputeGradient(parameters, data, indices, gradient, out _);

        var reference = new ReferenceMlp(spec);
        var p = parameters.Select(v => (double)v).ToArray();
        var x = Enumerable.Range(0, rows).Select(r => data.Row(r).ToArray().Select(v => (double)v).ToArray()).ToArray();
        var analytic = new double[p.Length];
        reference.LossAndGradient(p, x, labels, analytic);
        var numeric = new double[p.Length];
        // Fourth-order central differences: truncation error O(h⁴) and rounding error O(ε·L/h) both stay far
        // below 1e-6 at h = 1e-4. Where a ReLU or hinge kink lies within reach of the stencil, the estimate with a
        // ten times smaller step disagrees; then the smaller step (which no longer straddles the kink) is used.
        double At(int i, double value)
        {
            double saved = p[i];
            p[i] = value;
            double loss = reference.LossAndGradient(p, x, labels, null);
            p[i] = saved;
            return loss;
        }
        double Stencil(int i, double h) =>
            (At(i, p[i] - 2 * h) - 8 * At(i, p[i] - h) + 8 * At(i, p[i] + h) - At(i, p[i] + 2 * h)) / (12 * h);
        for (int i = 0; i < p.Length; i++)
        {
            double coarse = Stencil(i, 1e-4), fine = Stencil(i, 1e-5);
            numeric[i] = Math.Abs(coarse - fine) > 1e-6 * Math.Max(1e-3, Math.Abs(fine)) ? fine : coarse;
        }

        Assert.True(MaxRelativeError(analytic, numeric) <= 1e-6,
            $"float64 reference vs finite differences: {MaxRelativeError(analytic, numeric):E2}");
        var single = gradient.Select(v => (double)v).ToArray();
        Assert.True(MaxRelativeError(single, numeric) <= 1e-3,
            $"float32 core vs finite differences: {MaxRelativeError(single, numeric):E2}");
    }

    /// <summary>
    /// max_i |a−b| / max(|a|, |b|, τ) with τ = 1e-4·max|b|: a relative error that does not blow up on components that
    /// are zero up to rounding (e.g. a ReLU unit that is off for every row).
    /// </summary>
    internal static double MaxRelativeError(double[] a, double[] b)
    {
        double floor = Math.Max(1e-12, 1e-4 * b.Max(Math.Abs));
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
            worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / Math.Max(floor, Math.Max(Math.Abs(a[i]), Math.Abs(b[i]))));
        return worst;
    }
}

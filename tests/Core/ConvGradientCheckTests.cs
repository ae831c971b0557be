using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Core.Layers;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Tests.Core;

// The image layers' gradients — conv2d (kernels 1, 3, 5; strides 1, 2; padding 0, 1, 2; channels 1, 3, 7), max and
// average pooling, global average pooling, flatten, batch norm, dropout (the core's mask, fixed by seed, step and
// sample) and residual blocks with and without a projection — in combination with each loss, on odd heights and
// widths: the float32 core against central finite differences of a naive float64 forward pass (ReferenceCnn).
public class ConvGradientCheckTests
{
    private static readonly Dictionary<string, string> Models = new()
    {
        ["conv-pool"] = """
            { "input": [1, 11, 9], "layers": [
              { "type": "conv2d", "channels": 3, "kernel": 3, "padding": 1 }, { "type": "relu" },
              { "type": "maxpool2d", "kernel": 2 },
              { "type": "conv2d", "channels": 7, "kernel": 5, "stride": 2, "padding": 2 }, { "type": "tanh" },
              { "type": "avgpool2d", "kernel": 2, "stride": 1, "padding": 1 },
              { "type": "flatten" }, { "type": "linear", "units": 4 } ] }
            """,
        ["norm-dropout"] = """
            { "input": [3, 7, 5], "layers": [
              { "type": "conv2d", "channels": 7, "kernel": 1 }, { "type": "sigmoid" },
              { "type": "batchnorm2d" },
              { "type": "dropout", "p": 0.3 },
              { "type": "conv2d", "channels": 3, "kernel": 3, "stride": 2, "padding": 0 },
              { "type": "global_avgpool" }, { "type": "flatten" }, { "type": "linear", "units": 4 } ] }
            """,
        ["residual"] = """
            { "input": [3, 9, 7], "layers": [
              { "type": "residual", "layers": [
                { "type": "conv2d", "channels": 3, "kernel": 3, "padding": 1 }, { "type": "relu" },
                { "type": "conv2d", "channels": 3, "kernel": 3, "padding": 1 } ] },
              { "type": "relu" },
              { "type": "residual", "layers": [
                { "type": "conv2d", "channels": 7, "kernel": 3, "stride": 2, "padding": 1 }, { "type": "batchnorm2d" } ] },
              { "type": "maxpool2d", "kernel": 3, "stride": 2, "padding": 1 },
              { "type": "flatten" }, { "type": "dropout", "p": 0.5 }, { "type": "linear", "units": 4 } ] }
            """,
        ["wide-kernel"] = """
            { "input": [7, 13, 11], "layers": [
              { "type": "conv2d", "channels": 3, "kernel": 5, "stride": 1, "padding": 2, "bias": false },
              { "type": "conv2d", "channels": 3, "kernel": 3, "stride": 2, "padding": 0 }, { "type": "relu" },
              { "type": "flatten" }, { "type": "linear", "units": 4 } ] }
            """,
    };

    public static IEnumerable<object[]> Combinations()
    {
        string[] losses = ["softmax_cross_entropy", "mean_squared_error", "multiclass_hinge", "binary_cross_entropy_with_logits"];
        foreach (var model in Models.Keys)
            foreach (var loss in losses)
                yield return [model, loss];
    }

    internal static ModelSpec Spec(string model, string loss)
    {
        var spec = JsonSerializer.Deserialize<ModelSpec>(Models[model], TrainingConfig.Json)!;
        spec.Loss = loss;
        spec.Init = "glorot";
        spec.Seed = 5;
        return spec;
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void GradientsMatchFiniteDifferences(string model, string loss)
    {
        var random = new Random(model.Length * 31 + loss.Length);
        var spec = Spec(model, loss);
        var network = new Network(spec);
        const int rows = 4, classes = 4;
        const long step = 3;
        var parameters = network.CreateParameters(seed: 11);
        foreach (var t in network.Tensors.Where(t => t.Trainable))
            for (int i = t.Offset; i < t.Offset + t.Length; i++) parameters[i] += (float)(0.2 * (random.NextDouble() - 0.5));
        int width = network.Inputs;
        var features = new float[(rows + 3) * width];
        for (int i = 0; i < features.Length; i++) features[i] = (float)(random.NextDouble() * 4 - 2);
        var labels = Enumerable.Range(0, rows + 3).Select(_ => random.Next(classes)).ToArray();
        var data = new Dataset(features, labels, width, classes, "gradient-check");
        // Rows that are not the dataset's first: dropout masks follow the sample index.
        int[] indices = [5, 1, 6, 3];

        var gradient = new float[network.ParameterCount];
        new NetworkWorkspace(network, rows).ComputeGradient(parameters, data, indices, gradient, out _, step);

        var masks = DropoutMasks(network, indices, step);
        var reference = new ReferenceCnn(network, path => masks[path]);
        var p = parameters.Select(v => (double)v).ToArray();
        var x = indices.Select(r => data.Row(r).ToArray().Select(v => (double)v).ToArray()).ToArray();
        var y = indices.Select(r => labels[r]).ToArray();
        double At(int i, double value)
        {
            double saved = p[i];
            p[i] = value;
            double result = reference.Loss(p, x, y);
            p[i] = saved;
            return result;
        }
        double Stencil(int i, double h) =>
            (At(i, p[i] - 2 * h) - 8 * At(i, p[i] - h) + 8 * At(i, p[i] + h) - At(i, p[i] + 2 * h)) / (12 * h);
        // Every value of small tensors; 48 spread over each larger one (its first and last included).
        var trainable = network.Tensors.Where(t => t.Trainable).SelectMany(t => t.Length <= 48
            ? Enumerable.Range(t.Offset, t.Length)
            : Enumerable.Range(0, 48).Select(i => t.Offset + (int)((long)i * (t.Length - 1) / 47))).ToArray();
        var numeric = new double[trainable.Length];
        for (int j = 0; j < trainable.Length; j++)
        {
            int i = trainable[j];
            double coarse = Stencil(i, 1e-4), fine = Stencil(i, 1e-5);
            // Near a ReLU, max-pool or hinge kink the coarse stencil straddles it; the finer one does not.
            numeric[j] = Math.Abs(coarse - fine) > 1e-6 * Math.Max(1e-3, Math.Abs(fine)) ? fine : coarse;
        }
        var single = trainable.Select(i => (double)gradient[i]).ToArray();
        double error = GradientCheckTests.MaxRelativeError(single, numeric);
        Assert.True(error <= 2e-3, $"float32 core vs finite differences: {error:E2}");
    }

    [Fact]
    public void TheLossItselfMatchesTheFloat64Reference()
    {
        // A guard for the check above: the reference and the core agree on the forward pass, not only on slopes.
        var spec = Spec("residual", "softmax_cross_entropy");
        var network = new Network(spec);
        var parameters = network.CreateParameters(seed: 3);
        var random = new Random(2);
        var features = Enumerable.Range(0, 4 * network.Inputs).Select(_ => (float)random.NextDouble()).ToArray();
        var data = new Dataset(features, [0, 1, 2, 3], network.Inputs, 4, "forward");
        int[] indices = [0, 1, 2, 3];
        var gradient = new float[network.ParameterCount];
        double loss = new NetworkWorkspace(network, 4).ComputeGradient(parameters, data, indices, gradient, out _, step: 0);
        var masks = DropoutMasks(network, indices, 0);
        double expected = new ReferenceCnn(network, path => masks[path]).Loss(parameters.Select(v => (double)v).ToArray(),
            indices.Select(r => data.Row(r).ToArray().Select(v => (double)v).ToArray()).ToArray(), [0, 1, 2, 3]);
        Assert.Equal(expected, loss, 4);
    }

    /// <summary>Each dropout layer's mask for <paramref name="indices"/> at <paramref name="step"/>, by module path.</summary>
    internal static Dictionary<string, double[][]> DropoutMasks(Network network, int[] indices, long step)
    {
        var paths = new List<string>();
        void Walk(List<LayerSpec> specs, string prefix)
        {
            for (int i = 0; i < specs.Count; i++)
            {
                if (specs[i].Type == "dropout") paths.Add(prefix + i);
                if (specs[i].Layers is { } body) Walk(body, $"{prefix}{i}.body.");
            }
        }
        Walk(network.Spec.Layers, "");
        var result = new Dictionary<string, double[][]>();
        foreach (var (path, layer) in paths.Zip(network.AllLayers.OfType<Dropout>()))
        {
            int n = indices.Length, width = layer.InputWidth;
            var ones = Enumerable.Repeat(1f, n * width).ToArray();
            var mask = new float[n * width];
            var scratch = new float[layer.ScratchFloats(n)];
            layer.Forward([], ones, mask, n, new LayerContext(scratch, n, true, network.Spec.Seed, step, indices));
            // The mask is over the layer's channels-last input; the reference holds [C][H][W] (or flat) rows.
            var shape = layer.InputShape;
            result[path] = Enumerable.Range(0, n).Select(r =>
            {
                var row = new double[width];
                int c = shape.Channels, hw = shape.Height * shape.Width;
                for (int ch = 0; ch < c; ch++)
                    for (int q = 0; q < hw; q++) row[ch * hw + q] = mask[r * width + q * c + ch];
                return row;
            }).ToArray();
        }
        return result;
    }
}

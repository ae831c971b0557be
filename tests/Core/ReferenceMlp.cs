// A naive float64 implementation of the same model family (layers, losses, parameter layout), written
// independently of the SIMD core, used as the reference for gradient checks and forward passes.
using DistTrain.Core.Model;

namespace DistTrain.Tests.Core;

public sealed class ReferenceMlp(ModelSpec spec)
{
    /// <summary>Summed loss over the rows and, if <paramref name="gradient"/> is given, its gradient.</summary>
    public double LossAndGradient(double[] p, double[][] x, int[] labels, double[]? gradient)
    {
        double total = 0;
        if (gradient is not null) Array.Clear(gradient);
        for (int r = 0; r < x.Length; r++) total += Sample(p, x[r], labels[r], gradient);
        return total;
    }

    /// <summary>The network's outputs for one sample (before any softmax or sigmoid).</summary>
    public double[] Outputs(double[] p, double[] input) => Forward(p, input).Acts[^1];

    /// <summary>Forward, remembering every layer's input and output.</summary>
    private (List<double[]> Acts, List<(string Type, int Offset, int In, int Out)> Kinds) Forward(double[] p, double[] input)
    {
        var acts = new List<double[]> { input };
        var kinds = new List<(string Type, int Offset, int In, int Out)>();
        int offset = 0, width = spec.Inputs;
        foreach (var layer in spec.Layers)
        {
            var a = acts[^1];
            string type = layer.Type.ToLowerInvariant();
            double[] y;
            if (type == "linear")
            {
                int o = layer.Units;
                y = new double[o];
                for (int j = 0; j < o; j++)
                {
                    double s = p[offset + o * width + j];
                    for (int i = 0; i < width; i++) s += p[offset + j * width + i] * a[i];
                    y[j] = s;
                }
                kinds.Add((type, offset, width, o));
                offset += o * width + o;
                width = o;
            }
            else
            {
                y = a.Select(v => type switch
                {
                    "relu" => Math.Max(0, v),
                    "sigmoid" => 1 / (1 + Math.Exp(-v)),
                    _ => Math.Tanh(v),
                }).ToArray();
                kinds.Add((type, 0, width, width));
            }
            acts.Add(y);
        }
        return (acts, kinds);
    }

    private double Sample(double[] p, double[] input, int label, double[]? grad)
    {
        var (acts, kinds) = Forward(p, input);
        var z = acts[^1];
        int c = z.Length;
        double loss;
        var dz = new double[c];
        switch (spec.Loss)
        {
            case "softmax_cross_entropy":
            {
                double max = z.Max();
                double sum = z.Sum(v => Math.Exp(v - max));
                loss = max + Math.Log(sum) - z[label];
                for (int j = 0; j < c; j++) dz[j] = Math.Exp(z[j] - max) / sum - (j == label ? 1 : 0);
                break;
            }
            case "mean_squared_error":
                loss = 0;
                for (int j = 0; j < c; j++)
                {
                    double d = z[j] - (j == label ? 1 : 0);
                    loss += d * d / c;
                    dz[j] = 2 * d / c;
                }
                break;
            case "multiclass_hinge":
                loss = 0;
                for (int j = 0; j < c; j++)
                {
                    if (j == label) continue;
                    double m = 1 - (z[label] - z[j]);
                    if (m > 0) { loss += m / c; dz[j] += 1.0 / c; dz[label] -= 1.0 / c; }
                }
                break;
            default: // binary_cross_entropy_with_logits
                loss = 0;
                for (int j = 0; j < c; j++)
                {
                    double t = c == 1 ? label : (j == label ? 1 : 0);
                    double s = 1 / (1 + Math.Exp(-z[j]));
                    loss += -(t * Math.Log(s) + (1 - t) * Math.Log(1 - s)) / c;
                    dz[j] = (s - t) / c;
                }
                break;
        }
        if (grad is null) return loss;
        // Backward through the Jacobians, layer by layer.
        var dy = dz;
        for (int l = kinds.Count - 1; l >= 0; l--)
        {
            var (type, off, inW, outW) = kinds[l];
            var a = acts[l];
            var y = acts[l + 1];
            var dx = new double[inW];
            if (type == "linear")
            {
                for (int j = 0; j < outW; j++)
                {
                    grad[off + outW * inW + j] += dy[j];
                    for (int i = 0; i < inW; i++)
                    {
                        grad[off + j * inW + i] += dy[j] * a[i];
                        dx[i] += dy[j] * p[off + j * inW + i];
                    }
                }
            }
            else
            {
                for (int i = 0; i < inW; i++)
                    dx[i] = dy[i] * type switch
                    {
                        "relu" => a[i] > 0 ? 1 : 0,
                        "sigmoid" => y[i] * (1 - y[i]),
                        _ => 1 - y[i] * y[i],
                    };
            }
            dy = dx;
        }
        return loss;
    }
}

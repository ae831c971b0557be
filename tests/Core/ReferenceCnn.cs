using DistTrain.Core.Layers;
using DistTrain.Core.Model;

namespace DistTrain.Tests.Core;

/// <summary>
/// A naive float64 forward pass written from PyTorch's definitions, over a batch in NCHW order (as PyTorch holds it),
/// for any ModelSpec: conv2d, pools, batch norm in training mode (the batch's statistics), dropout with the masks the
/// core draws (given), residual blocks, flatten, linear, activations and the four losses. Parameters are found by
/// their PyTorch names in the network's tensor table, so the layout is checked too.
/// </summary>
public sealed class ReferenceCnn(Network network, Func<string, double[][]>? dropoutMasks = null)
{
    private readonly Dictionary<string, int> _offsets = network.Tensors.ToDictionary(t => t.Name, t => t.Offset);

    /// <summary>Summed loss over the batch <paramref name="x"/> (each row in PyTorch's [C][H][W] order).</summary>
    public double Loss(double[] p, double[][] x, int[] labels)
    {
        var (shape, rows) = Run(network.Spec.Layers, "", p, network.InputShape, x.Select(r => r.ToArray()).ToArray());
        double total = 0;
        for (int r = 0; r < rows.Length; r++) total += SampleLoss(network.Spec.Loss, rows[r], labels[r]);
        return total;
    }

    private (TensorShape, double[][]) Run(List<LayerSpec> specs, string prefix, double[] p, TensorShape shape, double[][] x)
    {
        for (int i = 0; i < specs.Count; i++)
        {
            var s = specs[i];
            string path = prefix + i;
            switch (s.Type)
            {
                case "linear":
                {
                    int w = _offsets[$"{path}.weight"], b = _offsets[$"{path}.bias"], n = shape.Size;
                    x = x.Select(row => Enumerable.Range(0, s.Units).Select(o =>
                        p[b + o] + Enumerable.Range(0, n).Sum(k => p[w + o * n + k] * row[k])).ToArray()).ToArray();
                    shape = TensorShape.Flat(s.Units);
                    break;
                }
                case "relu": x = Map(x, v => Math.Max(0, v)); break;
                case "sigmoid": x = Map(x, v => 1 / (1 + Math.Exp(-v))); break;
                case "tanh": x = Map(x, Math.Tanh); break;
                case "conv2d":
                {
                    var (y, outShape) = Conv(p, _offsets[$"{path}.weight"], _offsets.GetValueOrDefault($"{path}.bias", -1),
                        shape, s.Channels, s.Kernel, s.Stride ?? 1, s.Padding, x);
                    (x, shape) = (y, outShape);
                    break;
                }
                case "maxpool2d" or "avgpool2d":
                {
                    int k = s.Kernel, st = s.Stride ?? k, pad = s.Padding;
                    int ho = (shape.Height + 2 * pad - k) / st + 1, wo = (shape.Width + 2 * pad - k) / st + 1, c = shape.Channels;
                    var input = x;
                    var inShape = shape;
                    x = input.Select(row =>
                    {
                        var y = new double[c * ho * wo];
                        for (int ch = 0; ch < c; ch++)
                            for (int oy = 0; oy < ho; oy++)
                                for (int ox = 0; ox < wo; ox++)
                                {
                                    double acc = s.Type == "maxpool2d" ? double.NegativeInfinity : 0;
                                    for (int ky = 0; ky < k; ky++)
                                        for (int kx = 0; kx < k; kx++)
                                        {
                                            int iy = oy * st - pad + ky, ix = ox * st - pad + kx;
                                            if (iy < 0 || iy >= inShape.Height || ix < 0 || ix >= inShape.Width) continue;
                                            double v = row[(ch * inShape.Height + iy) * inShape.Width + ix];
                                            acc = s.Type == "maxpool2d" ? Math.Max(acc, v) : acc + v;
                                        }
                                    y[(ch * ho + oy) * wo + ox] = s.Type == "maxpool2d" ? acc : acc / (k * k);
                                }
                        return y;
                    }).ToArray();
                    shape = TensorShape.Image(c, ho, wo);
                    break;
                }
                case "global_avgpool":
                {
                    int c = shape.Channels, hw = shape.Height * shape.Width;
                    x = x.Select(row => Enumerable.Range(0, c).Select(ch => row.Skip(ch * hw).Take(hw).Average()).ToArray()).ToArray();
                    shape = TensorShape.Image(c, 1, 1);
                    break;
                }
                case "flatten": shape = TensorShape.Flat(shape.Size); break;
                case "dropout":
                {
                    var masks = dropoutMasks?.Invoke(path);
                    if (masks is not null) x = x.Select((row, r) => row.Select((v, j) => v * masks[r][j]).ToArray()).ToArray();
                    break;
                }
                case "batchnorm2d":
                {
                    int c = shape.Channels, hw = shape.Height * shape.Width;
                    int g = _offsets[$"{path}.weight"], b = _offsets[$"{path}.bias"];
                    double eps = s.Eps ?? 1e-5;
                    var y = x.Select(r => new double[r.Length]).ToArray();
                    for (int ch = 0; ch < c; ch++)
                    {
                        var values = x.SelectMany(r => r.Skip(ch * hw).Take(hw)).ToArray();
                        double mean = values.Average(), variance = values.Sum(v => (v - mean) * (v - mean)) / values.Length;
                        for (int r = 0; r < x.Length; r++)
                            for (int q = 0; q < hw; q++)
                                y[r][ch * hw + q] = p[g + ch] * (x[r][ch * hw + q] - mean) / Math.Sqrt(variance + eps) + p[b + ch];
                    }
                    x = y;
                    break;
                }
                case "residual":
                {
                    var (outShape, body) = Run(s.Layers!, $"{path}.body.", p, shape, x.Select(r => r.ToArray()).ToArray());
                    double[][] shortcut = x;
                    if (outShape != shape)
                    {
                        int stride = Enumerable.Range(1, 64).First(st =>
                            (shape.Height - 1) / st + 1 == outShape.Height && (shape.Width - 1) / st + 1 == outShape.Width);
                        (shortcut, _) = Conv(p, _offsets[$"{path}.projection.weight"], _offsets[$"{path}.projection.bias"], shape,
                            outShape.Channels, 1, stride, 0, x);
                    }
                    x = body.Select((row, r) => row.Select((v, j) => v + shortcut[r][j]).ToArray()).ToArray();
                    shape = outShape;
                    break;
                }
                default: throw new InvalidOperationException(s.Type);
            }
        }
        return (shape, x);
    }

    private static (double[][], TensorShape) Conv(double[] p, int w, int b, TensorShape shape, int cout, int k, int st, int pad,
        double[][] x)
    {
        int cin = shape.Channels, h = shape.Height, wd = shape.Width;
        int ho = (h + 2 * pad - k) / st + 1, wo = (wd + 2 * pad - k) / st + 1;
        var y = x.Select(row =>
        {
            var o = new double[cout * ho * wo];
            for (int co = 0; co < cout; co++)
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++)
                    {
                        double acc = b >= 0 ? p[b + co] : 0;
                        for (int ci = 0; ci < cin; ci++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int iy = oy * st - pad + ky, ix = ox * st - pad + kx;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                    acc += p[w + ((co * cin + ci) * k + ky) * k + kx] * row[(ci * h + iy) * wd + ix];
                                }
                        o[(co * ho + oy) * wo + ox] = acc;
                    }
            return o;
        }).ToArray();
        return (y, TensorShape.Image(cout, ho, wo));
    }

    private static double[][] Map(double[][] x, Func<double, double> f) => x.Select(r => r.Select(f).ToArray()).ToArray();

    internal static double SampleLoss(string loss, double[] z, int label)
    {
        int c = z.Length;
        switch (loss)
        {
            case "softmax_cross_entropy":
            {
                double max = z.Max();
                return max + Math.Log(z.Sum(v => Math.Exp(v - max))) - z[label];
            }
            case "mean_squared_error":
                return Enumerable.Range(0, c).Sum(j => Math.Pow(z[j] - (j == label ? 1 : 0), 2) / c);
            case "multiclass_hinge":
                return Enumerable.Range(0, c).Where(j => j != label).Sum(j => Math.Max(0, 1 - (z[label] - z[j])) / c);
            default:
                return Enumerable.Range(0, c).Sum(j =>
                {
                    double t = c == 1 ? label : (j == label ? 1 : 0), s = 1 / (1 + Math.Exp(-z[j]));
                    return -(t * Math.Log(s) + (1 - t) * Math.Log(1 - s)) / c;
                });
        }
    }
}

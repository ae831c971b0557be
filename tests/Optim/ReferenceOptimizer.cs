// Naive float64 implementations of the published update rules, written from the papers / PyTorch docs
// independently of the SIMD code, one element at a time and with the bias correction in its textbook form.
using DistTrain.Core.Optim;

namespace DistTrain.Tests.Optim;

internal sealed class ReferenceOptimizer(OptimizerSpec spec, int n)
{
    private int _t;
    public Dictionary<string, double[]> State { get; } = [];

    private double[] Buffer(string key, double initial = 0)
    {
        if (!State.TryGetValue(key, out var buffer))
        {
            buffer = new double[n];
            Array.Fill(buffer, initial);
            State[key] = buffer;
        }
        return buffer;
    }

    public void Step(double[] w, float[] gradient, double lr)
    {
        _t++;
        double wd = spec.WeightDecay, mu = spec.Momentum, eps = spec.Epsilon;
        for (int i = 0; i < n; i++)
        {
            double g = gradient[i];
            switch (spec.Type)
            {
                case "sgd":
                    g += wd * w[i];
                    if (mu > 0)
                    {
                        var b = Buffer("momentum");
                        b[i] = _t == 1 ? g : mu * b[i] + g; // PyTorch: b₁ = g
                        g = spec.Nesterov ? g + mu * b[i] : b[i];
                    }
                    w[i] -= lr * g;
                    break;
                case "adagrad":
                    {
                        g += wd * w[i];
                        var s = Buffer("sum", spec.InitialAccumulator);
                        s[i] += g * g;
                        w[i] -= lr * g / (Math.Sqrt(s[i]) + eps);
                        break;
                    }
                case "rmsprop":
                    {
                        g += wd * w[i];
                        double alpha = spec.Alpha;
                        var v = Buffer("squareAverage");
                        v[i] = alpha * v[i] + (1 - alpha) * g * g;
                        double meanSquare = v[i];
                        if (spec.Centered)
                        {
                            var a = Buffer("gradientAverage");
                            a[i] = alpha * a[i] + (1 - alpha) * g;
                            meanSquare -= a[i] * a[i];
                        }
                        double update = g / (Math.Sqrt(meanSquare) + eps);
                        if (mu > 0)
                        {
                            var b = Buffer("momentum");
                            b[i] = mu * b[i] + update;
                            update = b[i];
                        }
                        w[i] -= lr * update;
                        break;
                    }
                default: // adam, adamw: Kingma & Ba Algorithm 1 with ε̂ as in PyTorch
                    {
                        double beta1 = spec.Beta1, beta2 = spec.Beta2;
                        if (spec.Type == "adamw") w[i] *= 1 - lr * wd;
                        else g += wd * w[i];
                        var m = Buffer("m");
                        var v = Buffer("v");
                        m[i] = beta1 * m[i] + (1 - beta1) * g;
                        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
                        double mHat = m[i] / (1 - Math.Pow(beta1, _t));
                        double vHat = v[i] / (1 - Math.Pow(beta2, _t));
                        w[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
                        break;
                    }
            }
        }
    }
}

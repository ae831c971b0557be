// Placeholder; replaced by the optimizer work.
namespace DistTrain.Core.Optim;

public static class OptimizerFactory
{
    public static IOptimizer Create(OptimizerSpec spec, int parameterCount)
    {
        if (spec.Type != "adam" && spec.Type != "sgd")
            throw new UserInputException($"optimizer.type '{spec.Type}' is unknown; expected one of sgd, adagrad, rmsprop, adam, adamw");
        return new PlaceholderAdam(spec, parameterCount);
    }

    private sealed class PlaceholderAdam(OptimizerSpec spec, int n) : IOptimizer
    {
        private readonly float[] _m = new float[n], _v = new float[n];
        public string Name => "adam";
        public long StepCount { get; set; }
        public IReadOnlyDictionary<string, float[]> State => new Dictionary<string, float[]> { ["m"] = _m, ["v"] = _v };
        public void Step(Span<float> w, ReadOnlySpan<float> g, float lr)
        {
            StepCount++;
            double b1 = spec.Beta1, b2 = spec.Beta2;
            double c1 = 1 - Math.Pow(b1, StepCount), c2 = 1 - Math.Pow(b2, StepCount);
            for (int i = 0; i < w.Length; i++)
            {
                _m[i] = (float)(b1 * _m[i] + (1 - b1) * g[i]);
                _v[i] = (float)(b2 * _v[i] + (1 - b2) * g[i] * g[i]);
                w[i] -= (float)(lr / c1 * _m[i] / (Math.Sqrt(_v[i]) / Math.Sqrt(c2) + spec.Epsilon));
            }
        }
    }
}

public static class ScheduleFactory
{
    public static ILearningRateSchedule Create(ScheduleSpec spec, float baseLearningRate, long totalSteps) => new Constant(baseLearningRate);
    private sealed class Constant(float lr) : ILearningRateSchedule { public float At(long step) => lr; }
}

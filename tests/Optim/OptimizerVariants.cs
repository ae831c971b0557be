// The optimizer variants every optimizer test runs over, by name, as training configs would spell them.
using DistTrain.Core.Optim;

namespace DistTrain.Tests.Optim;

internal static class OptimizerVariants
{
    public static readonly IReadOnlyDictionary<string, Func<OptimizerSpec>> Specs = new Dictionary<string, Func<OptimizerSpec>>
    {
        ["sgd"] = () => new() { Type = "sgd", LearningRate = 0.05f },
        ["sgd-weight-decay"] = () => new() { Type = "sgd", LearningRate = 0.05f, WeightDecay = 0.1f },
        ["sgd-momentum"] = () => new() { Type = "sgd", LearningRate = 0.05f, Momentum = 0.9f },
        ["sgd-nesterov"] = () => new() { Type = "sgd", LearningRate = 0.05f, Momentum = 0.9f, Nesterov = true },
        ["sgd-nesterov-weight-decay"] = () => new()
        { Type = "sgd", LearningRate = 0.05f, Momentum = 0.8f, Nesterov = true, WeightDecay = 0.01f },
        ["adagrad"] = () => new() { Type = "adagrad", LearningRate = 0.05f, Epsilon = 1e-10f },
        ["adagrad-weight-decay-accumulator"] = () => new()
        { Type = "adagrad", LearningRate = 0.05f, WeightDecay = 0.1f, InitialAccumulator = 0.1f },
        ["rmsprop"] = () => new() { Type = "rmsprop", LearningRate = 0.01f },
        ["rmsprop-momentum"] = () => new() { Type = "rmsprop", LearningRate = 0.01f, Momentum = 0.9f, WeightDecay = 0.01f },
        ["rmsprop-centered"] = () => new() { Type = "rmsprop", LearningRate = 0.01f, Centered = true, Alpha = 0.9f },
        ["rmsprop-centered-momentum"] = () => new()
        { Type = "rmsprop", LearningRate = 0.01f, Centered = true, Momentum = 0.5f },
        ["adam"] = () => new() { Type = "adam", LearningRate = 0.01f },
        ["adam-l2"] = () => new() { Type = "adam", LearningRate = 0.01f, WeightDecay = 0.1f, Beta1 = 0.8f, Beta2 = 0.99f },
        ["adamw"] = () => new() { Type = "adamw", LearningRate = 0.01f, WeightDecay = 0.1f },
    };

    public static TheoryData<string> Names => [.. Specs.Keys];

    /// <summary>Every variant at every awkward length (not multiples of any vector width, and ones that use the
    /// 512-bit, 256-bit and scalar loops together: 25 = 16 + 8 + 1).</summary>
    public static TheoryData<string, int> NamesAndLengths
    {
        get
        {
            var data = new TheoryData<string, int>();
            foreach (var name in Specs.Keys)
                foreach (int n in new[] { 1, 7, 17, 25, 1031 })
                    data.Add(name, n);
            return data;
        }
    }

    public static IOptimizer Create(string name, int parameterCount) =>
        OptimizerFactory.Create(Specs[name](), parameterCount);

    public static float[] Uniform(Random random, int n, float scale = 1f)
    {
        var values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        return values;
    }
}

// Small models and data for forward-pass tests, written compactly: "tanh 15 sigmoid 5" is a tanh on the input,
// a linear layer of 15 units, a sigmoid, and a linear layer of 5 units.
using DistTrain.Core.Data;
using DistTrain.Core.Model;

namespace DistTrain.Tests.Core;

public static class TestModels
{
    public static Network Network(int inputs, string layers, string loss)
    {
        var spec = new ModelSpec { Inputs = inputs, Loss = loss, Init = "glorot" };
        foreach (string token in layers.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            spec.Layers.Add(int.TryParse(token, out int units)
                ? new LayerSpec { Type = "linear", Units = units }
                : new LayerSpec { Type = token });
        return new Network(spec);
    }

    /// <summary>Every weight and bias uniform in ±<paramref name="range"/>, so biases and logits are not all small.</summary>
    public static float[] Parameters(Network network, int seed, double range = 0.6)
    {
        var random = new Random(seed);
        var parameters = new float[network.ParameterCount];
        for (int i = 0; i < parameters.Length; i++) parameters[i] = (float)((random.NextDouble() * 2 - 1) * range);
        return parameters;
    }

    /// <summary>Features uniform in [low, high), labels valid for the network's loss.</summary>
    public static Dataset Data(Network network, int rows, int seed, double low = -2, double high = 2)
    {
        var random = new Random(seed);
        var features = new float[rows * network.Inputs];
        for (int i = 0; i < features.Length; i++) features[i] = (float)(low + random.NextDouble() * (high - low));
        var labels = new int[rows];
        for (int r = 0; r < rows; r++) labels[r] = random.Next(network.Classes);
        return new Dataset(features, labels, network.Inputs, network.Classes, "random");
    }
}

// Weight initialisation (seeded, bit-stable): He/Kaiming normal N(0, 2/fan_in) for layers feeding a ReLU
// (He et al. 2015), Glorot/Xavier uniform U(±√(6/(fan_in+fan_out))) otherwise (Glorot & Bengio 2010). Biases 0.
using DistTrain.Core.Data;
using DistTrain.Core.Layers;
using DistTrain.Core.Kernels;

namespace DistTrain.Core.Model;

public static class Init
{
    public static void Initialize(Network network, Span<float> parameters, ulong seed)
    {
        var random = new DeterministicRandom(seed);
        string scheme = network.Spec.Init.ToLowerInvariant();
        foreach (var linear in network.Layers.OfType<Linear>())
        {
            var weights = parameters.Slice(linear.ParameterOffset, linear.WeightCount);
            bool he = scheme == "he" || (scheme == "auto" && linear.FusedActivation == Activation.ReLU);
            if (he)
            {
                double std = Math.Sqrt(2.0 / linear.InputWidth);
                for (int i = 0; i < weights.Length; i++) weights[i] = (float)(std * random.NextGaussian());
            }
            else
            {
                double limit = Math.Sqrt(6.0 / (linear.InputWidth + linear.OutputWidth));
                for (int i = 0; i < weights.Length; i++) weights[i] = (float)((2 * random.NextDouble() - 1) * limit);
            }
            parameters.Slice(linear.ParameterOffset + linear.WeightCount, linear.OutputWidth).Clear();
        }
    }
}

// Weight initialisation (seeded, bit-stable): He/Kaiming normal N(0, 2/fan_in) for layers feeding a ReLU
// (He et al. 2015), Glorot/Xavier uniform U(±√(6/(fan_in+fan_out))) otherwise (Glorot & Bengio 2010), with
// fan_in = in·kh·kw and fan_out = out·kh·kw for convolutions. Biases 0; batch norm γ = 1, β = 0, running mean 0,
// running variance 1, no batches tracked (PyTorch's).
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
        foreach (var layer in network.AllLayers)
        {
            switch (layer)
            {
                case Linear linear:
                    Weights(parameters.Slice(linear.ParameterOffset, linear.WeightCount), linear.FusedActivation,
                        linear.InputWidth, linear.OutputWidth);
                    parameters.Slice(linear.ParameterOffset + linear.WeightCount, linear.OutputWidth).Clear();
                    break;
                case Conv2d conv:
                    int kernel = conv.Geometry.KernelHeight * conv.Geometry.KernelWidth;
                    Weights(parameters.Slice(conv.ParameterOffset, conv.WeightCount), conv.FusedActivation, conv.FanIn,
                        conv.Geometry.OutChannels * kernel);
                    parameters.Slice(conv.ParameterOffset + conv.WeightCount, conv.ParameterCount - conv.WeightCount).Clear();
                    break;
                case BatchNorm2d norm:
                    int c = norm.Channels;
                    parameters.Slice(norm.ParameterOffset, c).Fill(1f);
                    parameters.Slice(norm.ParameterOffset + c, 2 * c).Clear();
                    parameters.Slice(norm.RunningVarOffset, c).Fill(1f);
                    parameters[norm.CountOffset] = 0;
                    break;
            }
        }

        void Weights(Span<float> weights, Activation activation, int fanIn, int fanOut)
        {
            bool he = scheme == "he" || (scheme == "auto" && activation == Activation.ReLU);
            if (he)
            {
                double std = Math.Sqrt(2.0 / fanIn);
                for (int i = 0; i < weights.Length; i++) weights[i] = (float)(std * random.NextGaussian());
            }
            else
            {
                double limit = Math.Sqrt(6.0 / (fanIn + fanOut));
                for (int i = 0; i < weights.Length; i++) weights[i] = (float)((2 * random.NextDouble() - 1) * limit);
            }
        }
    }
}

// A multi-layer perceptron built from a ModelSpec: the layer objects (each Linear fused with the activation that
// follows it), the loss, and the layout of the flat parameter buffer with PyTorch nn.Sequential tensor names.
using DistTrain.Core.Kernels;
using DistTrain.Core.Layers;
using DistTrain.Core.Losses;

namespace DistTrain.Core.Model;

/// <summary>A named tensor inside the flat parameter buffer ("0.weight" [out, in], "0.bias" [out]).</summary>
public sealed record ParameterTensor(string Name, int Offset, int[] Shape)
{
    public int Length => Shape.Aggregate(1, (a, b) => a * b);
}

/// <summary>A parameterised layer's slice of the flat buffer, for per-layer gradient norms.</summary>
public sealed record ParameterGroup(string Name, int Offset, int Length);

public sealed class Network
{
    public Network(ModelSpec spec)
    {
        spec.Validate();
        Spec = spec;
        Loss = Loss.Create(spec.Loss);
        var layers = new List<Layer>();
        var tensors = new List<ParameterTensor>();
        var groups = new List<ParameterGroup>();
        int width = spec.Inputs, offset = 0;
        for (int i = 0; i < spec.Layers.Count; i++)
        {
            string type = spec.Layers[i].Type.ToLowerInvariant();
            if (type == "linear")
            {
                int units = spec.Layers[i].Units;
                // Fuse the activation that directly follows (PyTorch still counts it as its own module index).
                var fused = Activation.None;
                if (i + 1 < spec.Layers.Count && spec.Layers[i + 1].Type.ToLowerInvariant() != "linear")
                    fused = Activations.Parse(spec.Layers[i + 1].Type);
                var linear = new Linear(width, units, fused) { ParameterOffset = offset };
                tensors.Add(new ParameterTensor($"{i}.weight", offset, [units, width]));
                tensors.Add(new ParameterTensor($"{i}.bias", offset + linear.WeightCount, [units]));
                groups.Add(new ParameterGroup(i.ToString(), offset, linear.ParameterCount));
                offset += linear.ParameterCount;
                layers.Add(linear);
                width = units;
                if (fused != Activation.None) i++;
            }
            else
            {
                layers.Add(new ActivationLayer(width, Activations.Parse(type)) { ParameterOffset = offset });
            }
        }
        Layers = layers;
        Tensors = tensors;
        Groups = groups;
        ParameterCount = offset;
        Outputs = width;
        Classes = Loss.ClassesFor(width);
    }

    public ModelSpec Spec { get; }
    public Loss Loss { get; }
    /// <summary>Layers as executed (activations after a Linear are fused into it).</summary>
    public IReadOnlyList<Layer> Layers { get; }
    public IReadOnlyList<ParameterTensor> Tensors { get; }
    public IReadOnlyList<ParameterGroup> Groups { get; }
    public int ParameterCount { get; }
    public int Inputs => Spec.Inputs;
    public int Outputs { get; }
    /// <summary>Number of classes the labels may name.</summary>
    public int Classes { get; }

    /// <summary>Floating-point operations of one training sample's forward and backward pass (2 per multiply-add).</summary>
    public double TrainingFlopsPerSample()
    {
        double flops = 0;
        bool first = true;
        foreach (var linear in Layers.OfType<Linear>())
        {
            double macs = (double)linear.InputWidth * linear.OutputWidth;
            flops += 2 * macs * (first ? 2 : 3); // forward + weight gradient (+ input gradient after the first layer)
            first = false;
        }
        return flops;
    }

    public float[] CreateParameters(ulong seed)
    {
        var parameters = new float[ParameterCount];
        Init.Initialize(this, parameters, seed);
        return parameters;
    }

    /// <summary>Checks that a dataset fits this model; messages name the dataset and both widths.</summary>
    public void CheckCompatible(Data.Dataset data)
    {
        if (data.Width != Inputs)
            throw new UserInputException(
                $"{data.Source}: samples have {data.Width} features but model.inputs is {Inputs}");
        for (int i = 0; i < data.Labels.Length; i++)
            if ((uint)data.Labels[i] >= (uint)Classes)
                throw new UserInputException(
                    $"{data.Source}: sample {i} has label {data.Labels[i]}, expected 0..{Classes - 1} for a model with {Outputs} output(s) and {Spec.Loss}");
    }
}

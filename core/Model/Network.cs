// A network built from a ModelSpec: the layer objects (each Linear or Conv2d fused with the activation that follows
// it), every layer's output shape (inferred and checked here, one line naming the layer on a mismatch), the loss, and
// the layout of the flat parameter buffer with the tensor names of the equivalent PyTorch nn.Sequential.
using System.Text;
using DistTrain.Core.Kernels;
using DistTrain.Core.Layers;
using DistTrain.Core.Losses;

namespace DistTrain.Core.Model;

/// <summary>
/// A named tensor inside the flat parameter buffer ("0.weight" [out, in], "0.bias" [out]); buffers (batch norm's
/// running statistics) are not trained: the optimizer leaves them and the step updates them from batch statistics.
/// </summary>
public sealed record ParameterTensor(string Name, int Offset, int[] Shape, bool Trainable = true)
{
    public int Length => Shape.Aggregate(1, (a, b) => a * b);
}

/// <summary>A parameterised layer's trainable slice of the flat buffer, for per-layer gradient norms ("3 conv2d").</summary>
public sealed record ParameterGroup(string Name, int Offset, int Length);

/// <summary>A batch norm layer's running statistics: how TrainingStep folds the batch's statistics into them.</summary>
public sealed record RunningStatistics(int MeanOffset, int VarianceOffset, int CountOffset, int Channels, double Momentum);

/// <summary>One row of the model summary: module path, layer kind, output shape and parameter count.</summary>
public sealed record LayerSummary(string Path, string Kind, TensorShape Output, int Parameters);

public sealed class Network
{
    private readonly List<ParameterTensor> _tensors = [];
    private readonly List<ParameterGroup> _groups = [];
    private readonly List<RunningStatistics> _statistics = [];
    private readonly List<LayerSummary> _summary = [];
    private readonly List<Layer> _all = [];
    private long _offset;

    public Network(ModelSpec spec)
    {
        spec.CheckFields();
        Spec = spec;
        Loss = Loss.Create(spec.Loss);
        InputShape = spec.InputShape();
        Layers = Build(spec.Layers, InputShape, "", "model.layers");
        ParameterCount = (int)_offset;
        var output = Layers[^1].OutputShape;
        if (output.IsImage)
            throw new UserInputException(
                $"model.layers: the network ends with an image {output}; expected a flat output (add flatten and a linear layer)");
        Outputs = output.Size;
        Classes = Loss.ClassesFor(Outputs);
    }

    public ModelSpec Spec { get; }
    public Loss Loss { get; }
    public TensorShape InputShape { get; }
    /// <summary>Layers as executed (activations after a Linear or Conv2d are fused into it).</summary>
    public IReadOnlyList<Layer> Layers { get; }
    /// <summary>Every layer, those inside residual blocks included, in parameter order.</summary>
    public IReadOnlyList<Layer> AllLayers => _all;
    public IReadOnlyList<ParameterTensor> Tensors => _tensors;
    public IReadOnlyList<ParameterGroup> Groups => _groups;
    public IReadOnlyList<RunningStatistics> Statistics => _statistics;
    public IReadOnlyList<LayerSummary> Summary => _summary;
    public int ParameterCount { get; }
    public int Inputs => Spec.Inputs;
    public int Outputs { get; }
    /// <summary>Number of classes the labels may name.</summary>
    public int Classes { get; }

    private List<Layer> Build(List<LayerSpec> specs, TensorShape shape, string prefix, string field)
    {
        var layers = new List<Layer>();
        for (int i = 0; i < specs.Count; i++)
        {
            var spec = specs[i];
            string type = spec.Type.ToLowerInvariant(), path = prefix + i, at = $"{field}[{i}] ({type})";
            var fused = Activation.None;
            if (type is "linear" or "conv2d" && i + 1 < specs.Count && IsActivation(specs[i + 1].Type))
                fused = Activations.Parse(specs[i + 1].Type);
            Layer layer;
            switch (type)
            {
                case "linear":
                    if (shape.IsImage)
                        throw new UserInputException(
                            $"{at}: input shape {shape} is not flat; add {{ \"type\": \"flatten\" }} before it");
                    if (spec.Units <= 0) throw new UserInputException($"{field}[{i}].units must be > 0 for a linear layer, found {spec.Units}");
                    CheckSize(at, (long)(shape.Size + 1) * spec.Units, $"by layer {i} ({spec.Units} units)");
                    var linear = new Linear(shape.Size, spec.Units, fused) { ParameterOffset = (int)_offset };
                    AddTensor($"{path}.weight", [spec.Units, shape.Size]);
                    AddTensor($"{path}.bias", [spec.Units]);
                    layer = linear;
                    break;
                case "conv2d":
                {
                    RequireImage(at, shape);
                    if (spec.Channels <= 0) throw new UserInputException($"{at}: channels must be > 0, found {spec.Channels}");
                    var geometry = new ConvGeometry(shape.Channels, shape.Height, shape.Width, spec.Channels, spec.Kernel,
                        spec.Kernel, spec.Stride ?? 1, spec.Padding);
                    geometry.Validate(at);
                    bool bias = spec.Bias ?? true;
                    CheckSize(at, geometry.WeightCount + (bias ? spec.Channels : 0L), $"by layer {i} (conv2d)");
                    layer = new Conv2d(geometry, bias, fused) { ParameterOffset = (int)_offset };
                    AddTensor($"{path}.weight", [spec.Channels, shape.Channels, spec.Kernel, spec.Kernel]);
                    if (bias) AddTensor($"{path}.bias", [spec.Channels]);
                    break;
                }
                case "maxpool2d" or "avgpool2d":
                {
                    RequireImage(at, shape);
                    var geometry = new ConvGeometry(shape.Channels, shape.Height, shape.Width, shape.Channels, spec.Kernel,
                        spec.Kernel, spec.Stride ?? spec.Kernel, spec.Padding);
                    geometry.Validate(at);
                    // PyTorch: padding at most half the kernel.
                    if (2 * spec.Padding > spec.Kernel)
                        throw new UserInputException($"{at}: padding {spec.Padding} is more than half the kernel {spec.Kernel}");
                    layer = type == "maxpool2d" ? new MaxPool2d(geometry) : new AvgPool2d(geometry);
                    break;
                }
                case "global_avgpool":
                    RequireImage(at, shape);
                    layer = new GlobalAvgPool(shape);
                    break;
                case "flatten":
                    layer = new Flatten(shape);
                    break;
                case "dropout":
                    if (!(spec.P >= 0 && spec.P < 1)) throw new UserInputException($"{at}: p must be in [0, 1), found {spec.P}");
                    layer = new Dropout(shape, spec.P, Dropout.Mix((ulong)path.GetHashCodeStable()));
                    break;
                case "batchnorm2d":
                {
                    RequireImage(at, shape);
                    double eps = spec.Eps ?? 1e-5, momentum = spec.Momentum ?? 0.1;
                    if (!(eps > 0)) throw new UserInputException($"{at}: eps must be > 0, found {eps}");
                    if (!(momentum >= 0 && momentum <= 1)) throw new UserInputException($"{at}: momentum must be in [0, 1], found {momentum}");
                    var norm = new BatchNorm2d(shape, eps, momentum) { ParameterOffset = (int)_offset };
                    AddTensor($"{path}.weight", [shape.Channels]);
                    AddTensor($"{path}.bias", [shape.Channels]);
                    AddTensor($"{path}.running_mean", [shape.Channels], trainable: false);
                    AddTensor($"{path}.running_var", [shape.Channels], trainable: false);
                    AddTensor($"{path}.num_batches_tracked", [], trainable: false);
                    _statistics.Add(new RunningStatistics(norm.RunningMeanOffset, norm.RunningVarOffset, norm.CountOffset,
                        shape.Channels, momentum));
                    layer = norm;
                    break;
                }
                case "residual":
                {
                    long first = _offset;
                    var body = Build(spec.Layers!, shape, $"{path}.body.", $"{field}[{i}].layers");
                    var output = body[^1].OutputShape;
                    Conv2d? projection = null;
                    if (output != shape)
                    {
                        if (!shape.IsImage || !output.IsImage)
                            throw new UserInputException(
                                $"{at}: the body maps {shape} to {output}; a shortcut needs the same shape or two images");
                        int stride = Enumerable.Range(1, Math.Max(shape.Height, shape.Width))
                            .FirstOrDefault(s => (shape.Height - 1) / s + 1 == output.Height && (shape.Width - 1) / s + 1 == output.Width);
                        if (stride == 0)
                            throw new UserInputException(
                                $"{at}: the body maps {shape} to {output}; no 1×1 projection stride maps one to the other");
                        var geometry = new ConvGeometry(shape.Channels, shape.Height, shape.Width, output.Channels, 1, 1, stride, 0);
                        projection = new Conv2d(geometry, bias: true) { ParameterOffset = (int)_offset };
                        AddTensor($"{path}.projection.weight", [output.Channels, shape.Channels, 1, 1]);
                        AddTensor($"{path}.projection.bias", [output.Channels]);
                        _groups.Add(new ParameterGroup($"{path}.projection conv2d", projection.ParameterOffset, projection.ParameterCount));
                        _offset += projection.ParameterCount;
                        _all.Add(projection);
                        _summary.Add(new LayerSummary($"{path}.projection", "conv2d 1x1", output, projection.ParameterCount));
                    }
                    layer = new Residual(shape, body, projection) { ParameterOffset = (int)first };
                    _summary.Add(new LayerSummary(path, "residual", output, (int)(_offset - first)));
                    shape = output;
                    layers.Add(layer);
                    continue;
                }
                default:
                    layer = new ActivationLayer(shape, Activations.Parse(type)) { ParameterOffset = (int)_offset };
                    break;
            }
            // A trainable group per parameterised layer (batch norm: γ and β only).
            int trainable = layer is BatchNorm2d bn ? 2 * bn.Channels : layer.ParameterCount;
            if (layer.ParameterCount > 0) _groups.Add(new ParameterGroup($"{path} {type}", layer.ParameterOffset, trainable));
            _offset += layer.ParameterCount;
            if (_offset > Array.MaxLength)
                throw new UserInputException($"model has {_offset:N0}+ parameters by {at}; one buffer holds at most {Array.MaxLength:N0}");
            _all.Add(layer);
            layers.Add(layer);
            shape = layer.OutputShape;
            _summary.Add(new LayerSummary(path, fused == Activation.None ? type : $"{type} + {specs[i + 1].Type.ToLowerInvariant()}",
                shape, layer.ParameterCount));
            if (fused != Activation.None) i++;
        }
        return layers;
    }

    private void CheckSize(string at, long parameters, string where)
    {
        if (_offset + parameters > Array.MaxLength)
            throw new UserInputException(
                $"model has {_offset + parameters:N0}+ parameters {where}; one buffer holds at most {Array.MaxLength:N0}");
    }

    private void AddTensor(string name, int[] shape, bool trainable = true)
    {
        // Tensors tile the buffer in order: each starts where the one before it ends.
        int offset = _tensors.Count == 0 ? 0 : _tensors[^1].Offset + _tensors[^1].Length;
        _tensors.Add(new ParameterTensor(name, offset, shape, trainable));
    }

    private static bool IsActivation(string type) => type.ToLowerInvariant() is "relu" or "sigmoid" or "tanh";

    private static void RequireImage(string at, TensorShape shape)
    {
        if (!shape.IsImage)
            throw new UserInputException(
                $"{at}: needs an image input [channels, height, width], found {shape}; set model.input to a shape such as [1, 28, 28]");
    }

    /// <summary>The layer table printed at start, like torchinfo's: module, kind, output shape, parameters.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.AppendLine($"{"layer",-16} {"kind",-22} {"output shape",-16} {"parameters",12}");
        text.AppendLine($"{"input",-16} {"",-22} {InputShape,-16} {"",12}");
        foreach (var row in _summary)
            text.AppendLine($"{row.Path,-16} {row.Kind,-22} {row.Output,-16} {row.Parameters,12:N0}");
        text.Append($"total {ParameterCount:N0} parameters ({_tensors.Where(t => !t.Trainable).Sum(t => t.Length):N0} of them batch-norm statistics); {TrainingFlopsPerSample() / 1e6:F2} MFLOP per training sample");
        return text.ToString();
    }

    /// <summary>Floating-point operations of one training sample's forward and backward pass (2 per multiply-add).</summary>
    public double TrainingFlopsPerSample()
    {
        double flops = 0;
        for (int i = 0; i < Layers.Count; i++)
        {
            // The first parameterised layer needs no input gradient.
            bool inputGradient = Layers.Take(i).Any(l => l.ParameterCount > 0);
            var (forward, backward) = Layers[i].FlopsPerSample(inputGradient);
            flops += forward + backward;
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
        if (InputShape.IsImage && data.Shape is [int c, int h, int w] && (c, h, w) != (InputShape.Channels, InputShape.Height, InputShape.Width))
            throw new UserInputException(
                $"{data.Source}: samples have shape [{c}, {h}, {w}] but model.input is {InputShape}");
        for (int i = 0; i < data.Labels.Length; i++)
            if ((uint)data.Labels[i] >= (uint)Classes)
                throw new UserInputException(
                    $"{data.Source}: sample {i} has label {data.Labels[i]}, expected 0..{Classes - 1} for a model with {Outputs} output(s) and {Spec.Loss}");
    }
}

internal static class StableHash
{
    /// <summary>FNV-1a over the UTF-16 code units: the same on every machine and run (string.GetHashCode is not).</summary>
    public static long GetHashCodeStable(this string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char ch in text) hash = (hash ^ ch) * 1099511628211UL;
        return (long)hash;
    }
}

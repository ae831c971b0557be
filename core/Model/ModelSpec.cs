// The model section of a training config: the input (a width, or a [channels, height, width] image shape), an
// ordered list of layers (PyTorch nn.Sequential order, which also fixes the tensor names "0.weight", "2.bias", ...),
// the loss and the initialisation scheme. Shapes are inferred and checked when the Network is built.
namespace DistTrain.Core.Model;

public sealed class LayerSpec
{
    /// <summary>One of <see cref="ModelSpec.LayerTypes"/>.</summary>
    public string Type { get; set; } = "";
    /// <summary>Output width of a linear layer.</summary>
    public int Units { get; set; }
    /// <summary>Output channels of a conv2d layer.</summary>
    public int Channels { get; set; }
    /// <summary>Square kernel size of conv2d, maxpool2d and avgpool2d.</summary>
    public int Kernel { get; set; }
    /// <summary>Stride; 1 for conv2d and the kernel size for pooling when left out.</summary>
    public int? Stride { get; set; }
    /// <summary>Zero padding on every side (conv2d, pooling); 0 when left out.</summary>
    public int Padding { get; set; }
    /// <summary>Whether conv2d adds a bias (PyTorch's default: true).</summary>
    public bool? Bias { get; set; }
    /// <summary>Dropout probability, 0 ≤ p &lt; 1.</summary>
    public double P { get; set; }
    /// <summary>Batch norm ε (PyTorch's default 1e-5) and running-statistics momentum (0.1).</summary>
    public double? Eps { get; set; }
    public double? Momentum { get; set; }
    /// <summary>The body f of a residual block computing x + f(x).</summary>
    public List<LayerSpec>? Layers { get; set; }
}

public sealed class ModelSpec
{
    public static readonly string[] LayerTypes =
    [
        "linear", "relu", "sigmoid", "tanh", "conv2d", "maxpool2d", "avgpool2d", "global_avgpool", "flatten", "dropout",
        "batchnorm2d", "residual",
    ];
    public static readonly string[] LossTypes =
        ["softmax_cross_entropy", "mean_squared_error", "multiclass_hinge", "binary_cross_entropy_with_logits"];
    public static readonly string[] InitTypes = ["auto", "he", "glorot"];

    /// <summary>Input width of a flat model (the features per sample).</summary>
    public int Inputs { get; set; }
    /// <summary>Input shape: [width] or [channels, height, width]; when given, <see cref="Inputs"/> is its product.</summary>
    public int[]? Input { get; set; }
    public List<LayerSpec> Layers { get; set; } = [];
    public string Loss { get; set; } = "softmax_cross_entropy";
    /// <summary>auto (He before ReLU, Glorot otherwise) | he | glorot.</summary>
    public string Init { get; set; } = "auto";
    /// <summary>
    /// Seed of the dropout masks (each a pure function of this seed, the step and the sample's index in the dataset);
    /// the trainer sets it from training.seed.
    /// </summary>
    public long Seed { get; set; }

    /// <summary>The input as a shape (a flat width when only <see cref="Inputs"/> is given).</summary>
    public TensorShape InputShape() => Input switch
    {
        null or [] => TensorShape.Flat(Inputs),
        [int width] => TensorShape.Flat(width),
        [int c, int h, int w] => TensorShape.Image(c, h, w),
        _ => throw new UserInputException(
            $"model.input has {Input.Length} dimensions ([{string.Join(", ", Input)}]); expected [width] or [channels, height, width]"),
    };

    /// <summary>
    /// Checks names, values and shapes (by building the network once); every message names the config field, what was
    /// expected and what was found.
    /// </summary>
    public void Validate()
    {
        CheckFields();
        _ = new Network(this);
    }

    /// <summary>The checks that need no shapes; sets <see cref="Inputs"/> from <see cref="Input"/>.</summary>
    internal void CheckFields()
    {
        if (Input is { Length: > 0 })
        {
            if (Input.Any(d => d <= 0))
                throw new UserInputException($"model.input [{string.Join(", ", Input)}] must have every dimension > 0");
            long size = Input.Aggregate(1L, (a, b) => a * b);
            if (size > Array.MaxLength)
                throw new UserInputException($"model.input [{string.Join(", ", Input)}] holds {size:N0} values per sample; at most {Array.MaxLength:N0}");
            var shape = InputShape();
            if (Inputs != 0 && Inputs != shape.Size)
                throw new UserInputException($"model.inputs is {Inputs} but model.input [{string.Join(", ", Input)}] holds {shape.Size}; give one of them");
            Inputs = shape.Size;
        }
        if (Inputs <= 0) throw new UserInputException($"model.inputs must be > 0, found {Inputs}");
        if (Layers.Count == 0) throw new UserInputException("model.layers is empty; expected at least one linear layer");
        ValidateLayers(Layers, "model.layers");
        if (!LossTypes.Contains((Loss ?? "").ToLowerInvariant()))
            throw new UserInputException($"model.loss '{Loss}' is unknown; expected one of {string.Join(", ", LossTypes)}");
        if (!InitTypes.Contains((Init ?? "").ToLowerInvariant()))
            throw new UserInputException($"model.init '{Init}' is unknown; expected one of {string.Join(", ", InitTypes)}");
    }

    private static void ValidateLayers(List<LayerSpec> layers, string path)
    {
        for (int i = 0; i < layers.Count; i++)
        {
            var layer = layers[i];
            string type = (layer.Type ?? "").ToLowerInvariant();
            string at = $"{path}[{i}]";
            if (!LayerTypes.Contains(type))
                throw new UserInputException(
                    $"{at}.type '{layer.Type}' is unknown; expected one of {string.Join(", ", LayerTypes)}");
            if (type == "residual")
            {
                if (layer.Layers is not { Count: > 0 })
                    throw new UserInputException($"{at}: a residual block needs a non-empty \"layers\" list (its body f in x + f(x))");
                ValidateLayers(layer.Layers, $"{at}.layers");
            }
            else if (layer.Layers is not null)
                throw new UserInputException($"{at}: only a residual block has \"layers\"; found them on {type}");
        }
    }

    /// <summary>A one-line description, e.g. "784-128(relu)-10 softmax_cross_entropy" or "[1,28,28]-conv2d(32)-... ".</summary>
    public string Describe()
    {
        if (Input is { Length: 3 } || Layers.Any(l => !IsFlatType(l.Type)))
        {
            string input = Input is { Length: > 0 } ? $"[{string.Join(",", Input)}]" : Inputs.ToString();
            return $"{input}-{string.Join("-", Layers.Select(DescribeLayer))} {Loss}";
        }
        var parts = new List<string> { Inputs.ToString() };
        foreach (var l in Layers)
        {
            if (l.Type.Equals("linear", StringComparison.OrdinalIgnoreCase)) parts.Add(l.Units.ToString());
            else parts[^1] += $"({l.Type.ToLowerInvariant()})";
        }
        return $"{string.Join("-", parts)} {Loss}";
    }

    private static bool IsFlatType(string type) =>
        type.ToLowerInvariant() is "linear" or "relu" or "sigmoid" or "tanh";

    private static string DescribeLayer(LayerSpec l) => l.Type.ToLowerInvariant() switch
    {
        "linear" => $"linear({l.Units})",
        "conv2d" => $"conv2d({l.Channels},{l.Kernel}x{l.Kernel})",
        "maxpool2d" or "avgpool2d" => $"{l.Type.ToLowerInvariant()}({l.Kernel})",
        "dropout" => $"dropout({l.P})",
        "residual" => $"residual[{string.Join("-", (l.Layers ?? []).Select(DescribeLayer))}]",
        var t => t,
    };
}

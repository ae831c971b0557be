// The model section of a training config: input width, an ordered list of layers (PyTorch nn.Sequential order,
// which also fixes the tensor names "0.weight", "2.bias", ...), the loss and the initialisation scheme.
namespace DistTrain.Core.Model;

public sealed class LayerSpec
{
    /// <summary>linear | relu | sigmoid | tanh.</summary>
    public string Type { get; set; } = "";
    /// <summary>Output width of a linear layer.</summary>
    public int Units { get; set; }
}

public sealed class ModelSpec
{
    public static readonly string[] LayerTypes = ["linear", "relu", "sigmoid", "tanh"];
    public static readonly string[] LossTypes =
        ["softmax_cross_entropy", "mean_squared_error", "multiclass_hinge", "binary_cross_entropy_with_logits"];
    public static readonly string[] InitTypes = ["auto", "he", "glorot"];

    public int Inputs { get; set; }
    public List<LayerSpec> Layers { get; set; } = [];
    public string Loss { get; set; } = "softmax_cross_entropy";
    /// <summary>auto (He before ReLU, Glorot otherwise) | he | glorot.</summary>
    public string Init { get; set; } = "auto";

    /// <summary>Checks names and widths; every message names the config field, what was expected and what was found.</summary>
    public void Validate()
    {
        if (Inputs <= 0) throw new UserInputException($"model.inputs must be > 0, found {Inputs}");
        if (Layers.Count == 0) throw new UserInputException("model.layers is empty; expected at least one linear layer");
        for (int i = 0; i < Layers.Count; i++)
        {
            var layer = Layers[i];
            string type = (layer.Type ?? "").ToLowerInvariant();
            if (!LayerTypes.Contains(type))
                throw new UserInputException(
                    $"model.layers[{i}].type '{layer.Type}' is unknown; expected one of {string.Join(", ", LayerTypes)}");
            if (type == "linear" && layer.Units <= 0)
                throw new UserInputException($"model.layers[{i}].units must be > 0 for a linear layer, found {layer.Units}");
        }
        if (!Layers.Any(l => l.Type.Equals("linear", StringComparison.OrdinalIgnoreCase)))
            throw new UserInputException("model.layers has no linear layer; expected at least one");
        // Counted in 64 bits: the parameters live in one array, and a layer of 2e9 units overflows an int.
        long parameters = 0, width = Inputs;
        foreach (var layer in Layers.Where(l => l.Type.Equals("linear", StringComparison.OrdinalIgnoreCase)))
        {
            parameters += (width + 1) * layer.Units;
            width = layer.Units;
            if (parameters > Array.MaxLength)
                throw new UserInputException(
                    $"model has {parameters:N0}+ parameters by layer {Layers.IndexOf(layer)} ({layer.Units} units); one buffer holds at most {Array.MaxLength:N0}");
        }
        if (!LossTypes.Contains((Loss ?? "").ToLowerInvariant()))
            throw new UserInputException($"model.loss '{Loss}' is unknown; expected one of {string.Join(", ", LossTypes)}");
        if (!InitTypes.Contains((Init ?? "").ToLowerInvariant()))
            throw new UserInputException($"model.init '{Init}' is unknown; expected one of {string.Join(", ", InitTypes)}");
    }

    /// <summary>Width of the network's output (the last linear layer's units).</summary>
    public int Outputs => Layers.Last(l => l.Type.Equals("linear", StringComparison.OrdinalIgnoreCase)).Units;

    /// <summary>A one-line description, e.g. "784-128(relu)-10 softmax_cross_entropy".</summary>
    public string Describe()
    {
        var parts = new List<string> { Inputs.ToString() };
        foreach (var l in Layers)
        {
            if (l.Type.Equals("linear", StringComparison.OrdinalIgnoreCase)) parts.Add(l.Units.ToString());
            else parts[^1] += $"({l.Type.ToLowerInvariant()})";
        }
        return $"{string.Join("-", parts)} {Loss}";
    }
}

// Saving and loading a network's weights as safetensors, tensor by tensor ("0.weight" [out, in], "0.bias" [out],
// ...), so a file written here loads into torch.nn.Sequential with load_state_dict and back.
namespace DistTrain.Core.Model;

public static class WeightsFile
{
    /// <summary>Metadata key of the model spec as JSON: a saved file names the network its tensors fit.</summary>
    public const string ModelKey = "disttrain_model";
    /// <summary>Metadata key of the SHA-256 fingerprint of the data the weights were trained on.</summary>
    public const string FingerprintKey = "data_fingerprint";

    /// <summary>
    /// The metadata saved with trained weights (by `disttrain train --save` and by code): "format": "pt", as PyTorch
    /// writes it, the model spec, the data fingerprint and the preprocessing (each left out when unknown), so
    /// `evaluate`, `predict` and the ONNX export need nothing but the file and raw features.
    /// </summary>
    public static Dictionary<string, string> TrainedMetadata(ModelSpec model, string? fingerprint, Data.Preprocessing? preprocessing = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            [ModelKey] = System.Text.Json.JsonSerializer.Serialize(model, Training.TrainingConfig.Json),
        };
        if (!string.IsNullOrEmpty(fingerprint)) metadata[FingerprintKey] = fingerprint;
        if (preprocessing is not null) metadata[Data.Preprocessing.MetadataKey] = preprocessing.ToJson();
        return metadata;
    }

    public static IEnumerable<SafeTensor> ToTensors(Network network, ReadOnlySpan<float> parameters)
    {
        var list = new List<SafeTensor>();
        foreach (var t in network.Tensors)
            list.Add(new SafeTensor(t.Name, t.Shape, parameters.Slice(t.Offset, t.Length).ToArray()));
        return list;
    }

    public static void Save(string path, Network network, ReadOnlySpan<float> parameters,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var tensors = ToTensors(network, parameters);
        AtomicFile.Write(path, stream => SafeTensorsFile.Write(stream, tensors, metadata));
    }

    /// <summary>Copies every tensor of the network from <paramref name="file"/>; names and shapes must match exactly.</summary>
    public static void CopyInto(SafeTensorsFile file, string path, Network network, Span<float> parameters)
    {
        foreach (var t in network.Tensors)
        {
            if (!file.Tensors.TryGetValue(t.Name, out var tensor))
                throw new UserInputException(
                    $"{path}: has no tensor '{t.Name}' (the model needs {string.Join(", ", network.Tensors.Select(x => x.Name))})");
            if (!tensor.Shape.SequenceEqual(t.Shape))
                throw new UserInputException(
                    $"{path}: tensor '{t.Name}' has shape [{string.Join(",", tensor.Shape)}], the model expects [{string.Join(",", t.Shape)}]");
            tensor.Data.CopyTo(parameters.Slice(t.Offset, t.Length));
        }
    }

    public static float[] Load(string path, Network network) => Load(path, network, out _);

    /// <param name="path">The safetensors file.</param>
    /// <param name="network">The network whose tensors it must hold, by name and shape.</param>
    /// <param name="preprocessing">What training applied to raw features, when the file says (null for files without it).</param>
    public static float[] Load(string path, Network network, out Data.Preprocessing? preprocessing)
    {
        var parameters = new float[network.ParameterCount];
        var file = SafeTensorsFile.Read(path);
        CopyInto(file, path, network, parameters);
        preprocessing = file.Metadata.TryGetValue(Data.Preprocessing.MetadataKey, out string? json)
            ? Data.Preprocessing.FromJson(json, path)
            : null;
        return parameters;
    }
}

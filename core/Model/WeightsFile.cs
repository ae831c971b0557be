// Saving and loading a network's weights as safetensors, tensor by tensor ("0.weight" [out, in], "0.bias" [out],
// ...), so a file written here loads into torch.nn.Sequential with load_state_dict and back.
namespace DistTrain.Core.Model;

public static class WeightsFile
{
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

    /// <summary>
    /// The metadata a trained model is saved with: the model spec, the data fingerprint and the preprocessing, so
    /// `evaluate`, `predict` and the ONNX export need nothing but the file and raw features.
    /// </summary>
    public static Dictionary<string, string> ModelMetadata(ModelSpec model, string fingerprint, Data.Preprocessing preprocessing) => new()
    {
        ["format"] = "pt",
        ["disttrain_model"] = System.Text.Json.JsonSerializer.Serialize(model, Training.TrainingConfig.Json),
        ["data_fingerprint"] = fingerprint,
        [Data.Preprocessing.MetadataKey] = preprocessing.ToJson(),
    };
}

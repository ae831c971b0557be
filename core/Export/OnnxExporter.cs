// Writes a network as an ONNX model that computes what the Predictor computes: raw features in, the training
// preprocessing, one node per model layer (weights as initializers named like the safetensors tensors), and the
// outputs "logits" and "probabilities". Each layer kind has its own small function below.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Reflection;
using DistTrain.Core.Data;
using DistTrain.Core.Losses;
using DistTrain.Core.Model;
using Google.Protobuf;
using Onnx;

namespace DistTrain.Core.Export;

public static class OnnxExporter
{
    /// <summary>Operator set 17 and IR version 8 (ONNX 1.12): every op used here exists there, and runtimes from
    /// ONNX Runtime 1.12 on load it.</summary>
    public const int Opset = 17;
    public const long IrVersion = 8;
    public const string InputName = "input", LogitsName = "logits", ProbabilitiesName = "probabilities";
    /// <summary>The symbolic first dimension of the input and outputs: any number of rows per run.</summary>
    public const string BatchDimension = "batch";
    public static readonly string[] LayerTypes = ["linear", "relu", "sigmoid", "tanh"];

    // A protobuf message cannot exceed 2 GiB; larger models would need ONNX's external-data files.
    private const long MaxWeightBytes = int.MaxValue - (16 << 20);

    /// <summary>Writes the ONNX model to <paramref name="output"/>.</summary>
    public static void Export(Network network, ReadOnlySpan<float> parameters, Preprocessing? preprocessing,
        Stream output)
    {
        ArgumentNullException.ThrowIfNull(output);
        ToModel(network, parameters, preprocessing).WriteTo(output);
    }

    /// <summary>Writes the ONNX model to <paramref name="path"/> atomically: readers see the old file or the new one.</summary>
    public static void Export(Network network, ReadOnlySpan<float> parameters, Preprocessing? preprocessing,
        string path)
    {
        var model = ToModel(network, parameters, preprocessing);
        AtomicFile.Write(path, model.WriteTo);
    }

    /// <summary>The ONNX model as a message, for callers that inspect or embed it.</summary>
    public static ModelProto ToModel(Network network, ReadOnlySpan<float> parameters, Preprocessing? preprocessing)
    {
        ArgumentNullException.ThrowIfNull(network);
        if (parameters.Length != network.ParameterCount)
            throw new ArgumentException(
                $"{parameters.Length} parameters, the network has {network.ParameterCount}", nameof(parameters));
        if ((long)parameters.Length * sizeof(float) > MaxWeightBytes)
            throw new UserInputException(
                $"model has {parameters.Length} parameters; ONNX export supports at most {MaxWeightBytes / sizeof(float)} (one 2 GiB file)");

        var graph = new GraphProto { Name = network.Spec.Describe() };
        graph.Input.Add(Batch(InputName, network.Inputs));
        string x = preprocessing is null ? InputName : AddPreprocessing(graph, preprocessing, network.Inputs);

        var tensors = new Queue<ParameterTensor>(network.Tensors);
        var layers = network.Spec.Layers;
        for (int i = 0; i < layers.Count; i++)
        {
            string output = i == layers.Count - 1 ? LogitsName : $"{i}.output";
            x = layers[i].Type.ToLowerInvariant() switch
            {
                "linear" => AddLinear(graph, i, x, output, tensors.Dequeue(), tensors.Dequeue(), parameters),
                "relu" => AddElementwise(graph, "Relu", i, x, output),
                "sigmoid" => AddElementwise(graph, "Sigmoid", i, x, output),
                "tanh" => AddElementwise(graph, "Tanh", i, x, output),
                _ => throw new UserInputException(
                    $"model.layers[{i}].type '{layers[i].Type}' cannot be exported to ONNX; expected one of {string.Join(", ", LayerTypes)}"),
            };
        }
        Debug.Assert(tensors.Count == 0 && x == LogitsName);
        AddProbabilities(graph, network.Loss.Probabilities);
        graph.Output.Add(Batch(LogitsName, network.Outputs));
        graph.Output.Add(Batch(ProbabilitiesName, network.Outputs));

        return new ModelProto
        {
            IrVersion = IrVersion,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = Opset } },
            ProducerName = "DistTrain",
            ProducerVersion = ProducerVersion(),
            DocString = $"{network.Spec.Describe()}; probabilities: {network.Loss.Probabilities.ToString().ToLowerInvariant()}",
            Graph = graph,
        };
    }

    /// <summary>x / scale, then (x − mean)·(1/std) per feature; a feature whose std is 0 is only centred.</summary>
    private static string AddPreprocessing(GraphProto graph, Preprocessing preprocessing, int width)
    {
        if (!float.IsFinite(preprocessing.Scale) || preprocessing.Scale <= 0)
            throw new UserInputException($"preprocessing scale is {preprocessing.Scale}, expected a positive number");
        string x = InputName;
        if (preprocessing.Scale != 1f)
        {
            graph.Initializer.Add(FloatTensor("preprocessing.scale", [], [preprocessing.Scale]));
            x = AddNode(graph, "Div", "preprocessing.Div", [x, "preprocessing.scale"], "preprocessing.scaled");
        }
        if (preprocessing.Mode == StandardizeMode.None) return x;

        float[] mean = Array.ConvertAll(preprocessing.FeatureMean(width), m => (float)m);
        // Multiplying by the reciprocal is what training did (Normalization's FeatureStatistics.Apply).
        float[] inverse = Array.ConvertAll(preprocessing.FeatureStdDev(width), s => s > 0 ? (float)(1 / s) : 1f);
        graph.Initializer.Add(FloatTensor("preprocessing.mean", [width], mean));
        graph.Initializer.Add(FloatTensor("preprocessing.inverse_std", [width], inverse));
        x = AddNode(graph, "Sub", "preprocessing.Sub", [x, "preprocessing.mean"], "preprocessing.centered");
        return AddNode(graph, "Mul", "preprocessing.Mul", [x, "preprocessing.inverse_std"], "preprocessing.standardized");
    }

    /// <summary>Y = X·Wᵀ + b as one Gemm (transB = 1), W [out, in] and b [out] stored under their tensor names.</summary>
    private static string AddLinear(GraphProto graph, int index, string input, string output, ParameterTensor weight,
        ParameterTensor bias, ReadOnlySpan<float> parameters)
    {
        Debug.Assert(weight.Name == $"{index}.weight" && bias.Name == $"{index}.bias");
        graph.Initializer.Add(FloatTensor(weight.Name, weight.Shape, parameters.Slice(weight.Offset, weight.Length)));
        graph.Initializer.Add(FloatTensor(bias.Name, bias.Shape, parameters.Slice(bias.Offset, bias.Length)));
        var node = Node("Gemm", $"{index}.Gemm", [input, weight.Name, bias.Name], output);
        node.Attribute.Add(new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        graph.Node.Add(node);
        return output;
    }

    private static string AddElementwise(GraphProto graph, string op, int index, string input, string output) =>
        AddNode(graph, op, $"{index}.{op}", [input], output);

    private static void AddProbabilities(GraphProto graph, ProbabilityFunction function)
    {
        if (function == ProbabilityFunction.Sigmoid)
        {
            AddNode(graph, "Sigmoid", "probabilities.Sigmoid", [LogitsName], ProbabilitiesName);
            return;
        }
        var node = Node("Softmax", "probabilities.Softmax", [LogitsName], ProbabilitiesName);
        node.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        graph.Node.Add(node);
    }

    private static string AddNode(GraphProto graph, string op, string name, string[] inputs, string output)
    {
        graph.Node.Add(Node(op, name, inputs, output));
        return output;
    }

    private static NodeProto Node(string op, string name, string[] inputs, string output) =>
        new() { OpType = op, Name = name, Input = { inputs }, Output = { output } };

    /// <summary>A float tensor [batch, width] whose first dimension is symbolic.</summary>
    private static ValueInfoProto Batch(string name, int width) => new()
    {
        Name = name,
        Type = new TypeProto
        {
            TensorType = new TypeProto.Types.Tensor
            {
                ElemType = (int)TensorProto.Types.DataType.Float,
                Shape = new TensorShapeProto
                {
                    Dim =
                    {
                        new TensorShapeProto.Types.Dimension { DimParam = BatchDimension },
                        new TensorShapeProto.Types.Dimension { DimValue = width },
                    },
                },
            },
        },
    };

    /// <summary>raw_data holds the values little-endian, whatever this machine's byte order.</summary>
    private static TensorProto FloatTensor(string name, int[] shape, ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        var tensor = new TensorProto
        {
            Name = name,
            DataType = (int)TensorProto.Types.DataType.Float,
            RawData = UnsafeByteOperations.UnsafeWrap(bytes), // the array is never touched again
        };
        foreach (int d in shape) tensor.Dims.Add(d);
        return tensor;
    }

    private static string ProducerVersion() =>
        typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "";
}

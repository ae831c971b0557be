using DistTrain.Core;
using DistTrain.Core.Data;
using DistTrain.Core.Export;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Tests.Core;
using Onnx;

namespace DistTrain.Tests.Export;

public class OnnxExportTests
{
    public static TheoryData<int, string, string, string> Models => new()
    {
        { 1, "1", "mean_squared_error", "none" },
        { 7, "8 relu 9", "softmax_cross_entropy", "scale" },
        { 9, "tanh 15 sigmoid sigmoid 17 5", "softmax_cross_entropy", "per-feature" },
        { 33, "17 relu 1", "binary_cross_entropy_with_logits", "per-channel" },
        { 16, "33 tanh 7 sigmoid", "multiclass_hinge", "per-feature" },
        { 18, "13 relu 4", "binary_cross_entropy_with_logits", "none" },
        { 12, "relu 10 tanh 10", "mean_squared_error", "per-channel" },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void OnnxRuntimeGivesThePredictorsOutputs(int inputs, string layers, string loss, string preprocess)
    {
        var network = TestModels.Network(inputs, layers, loss);
        var parameters = TestModels.Parameters(network, seed: inputs);
        var preprocessing = Preprocessing(preprocess, inputs);
        // Raw features as a loader reads them (pixel-like values when there is scaling), for ONNX Runtime.
        var raw = TestModels.Data(network, 300, seed: 2, low: 0, high: preprocessing is null ? 1 : 255);
        var prepared = new Dataset((float[])raw.Features.Clone(), raw.Labels, raw.Width, raw.Classes, raw.Source);
        preprocessing?.Apply(prepared);
        using var predictor = new Predictor(network, threads: 2);
        var expected = predictor.Predict(parameters, prepared);

        using var onnx = new OnnxRun(Export(network, parameters, preprocessing));
        var (logits, probabilities) = onnx.Run(raw.Features, raw.Count);

        AssertClose(expected, logits, probabilities);
    }

    [Fact]
    public void InitializersAreTheSafetensorsTensors()
    {
        var network = TestModels.Network(11, "tanh 9 relu 8 sigmoid 3", "softmax_cross_entropy");
        var parameters = TestModels.Parameters(network, seed: 1);

        var model = OnnxExporter.ToModel(network, parameters, null);

        var tensors = WeightsFile.ToTensors(network, parameters).ToList();
        Assert.Equal(["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"], tensors.Select(t => t.Name));
        Assert.Equal(tensors.Select(t => t.Name), model.Graph.Initializer.Select(i => i.Name));
        foreach (var (tensor, initializer) in tensors.Zip(model.Graph.Initializer))
        {
            Assert.Equal(tensor.Shape.Select(d => (long)d), initializer.Dims);
            Assert.Equal((int)TensorProto.Types.DataType.Float, initializer.DataType);
            Assert.Equal(tensor.Data, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(initializer.RawData.Span).ToArray());
        }

        var withPreprocessing = OnnxExporter.ToModel(network, parameters, Preprocessing("per-feature", 11));
        Assert.Equal(["preprocessing.scale", "preprocessing.mean", "preprocessing.inverse_std", .. tensors.Select(t => t.Name)],
            withPreprocessing.Graph.Initializer.Select(i => i.Name));
    }

    [Fact]
    public void TheBatchDimensionIsSymbolic()
    {
        var network = TestModels.Network(13, "21 relu 6", "softmax_cross_entropy");
        var parameters = TestModels.Parameters(network, seed: 2);
        var model = OnnxExporter.ToModel(network, parameters, null);
        foreach (var value in model.Graph.Input.Concat(model.Graph.Output))
        {
            var dims = value.Type.TensorType.Shape.Dim;
            Assert.Equal((OnnxExporter.BatchDimension, 0L), (dims[0].DimParam, dims[0].DimValue));
        }

        using var onnx = new OnnxRun(Export(network, parameters, null));
        Assert.Equal([-1, 13], onnx.Session.InputMetadata[OnnxExporter.InputName].Dimensions);
        using var predictor = new Predictor(network, threads: 1);
        foreach (int rows in new[] { 1, 37 })
        {
            var data = TestModels.Data(network, rows, seed: rows);
            var (logits, probabilities) = onnx.Run(data.Features, rows);
            AssertClose(predictor.Predict(parameters, data), logits, probabilities);
        }
    }

    [Fact]
    public void DeclaresAnOpsetAndIrVersionOnnxRuntimeLoads()
    {
        var network = TestModels.Network(3, "4 sigmoid 2", "binary_cross_entropy_with_logits");
        byte[] bytes = Export(network, TestModels.Parameters(network, seed: 3), null);

        var model = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(8, model.IrVersion);
        Assert.Equal(("", 17L), (model.OpsetImport.Single().Domain, model.OpsetImport.Single().Version));
        Assert.Equal("DistTrain", model.ProducerName);
        Assert.False(string.IsNullOrEmpty(model.ProducerVersion));
        Assert.Equal(["Gemm", "Sigmoid", "Gemm", "Sigmoid"], model.Graph.Node.Select(n => n.OpType));
        using var onnx = new OnnxRun(bytes);
        Assert.Equal("DistTrain", onnx.Session.ModelMetadata.ProducerName);
    }

    [Fact]
    public void ALayerKindItCannotExportIsAOneLineUserError()
    {
        var network = TestModels.Network(3, "4 relu 2", "softmax_cross_entropy");
        network.Spec.Layers[1].Type = "maxpool"; // as if the model spec knew a kind the exporter does not

        var error = Assert.Throws<UserInputException>(() =>
            OnnxExporter.ToModel(network, TestModels.Parameters(network, seed: 1), null));

        Assert.Equal("model.layers[1].type 'maxpool' cannot be exported to ONNX; expected one of linear, relu, sigmoid, tanh",
            error.Message);
    }

    [Fact]
    public void ThePathOverloadReplacesTheFileWhole()
    {
        var network = TestModels.Network(5, "7 relu 3", "softmax_cross_entropy");
        var parameters = TestModels.Parameters(network, seed: 5);
        string directory = Directory.CreateTempSubdirectory("disttrain-onnx-").FullName;
        try
        {
            string path = Path.Combine(directory, "model.onnx");
            File.WriteAllText(path, "an older file");

            OnnxExporter.Export(network, parameters, null, path);

            Assert.Equal([path], Directory.GetFiles(directory));
            Assert.Equal(Export(network, parameters, null), File.ReadAllBytes(path));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    internal static byte[] Export(Network network, float[] parameters, Preprocessing? preprocessing)
    {
        using var stream = new MemoryStream();
        OnnxExporter.Export(network, parameters, preprocessing, stream);
        return stream.ToArray();
    }

    /// <summary>Probabilities within 1e-5 of the predictor's; logits within float32 rounding of a different summation order.</summary>
    internal static void AssertClose(Predictions expected, float[] logits, float[] probabilities)
    {
        Assert.Equal(expected.Logits.Length, logits.Length);
        Assert.Equal(expected.Probabilities.Length, probabilities.Length);
        for (int i = 0; i < logits.Length; i++)
            Assert.True(Math.Abs(expected.Logits[i] - logits[i]) <= 1e-4 * (1 + Math.Abs(expected.Logits[i])),
                $"logit {i}: predictor {expected.Logits[i]}, ONNX Runtime {logits[i]}");
        double worst = expected.Probabilities.Zip(probabilities, (a, b) => Math.Abs(a - b)).DefaultIfEmpty().Max();
        Assert.True(worst <= 1e-5, $"largest probability difference {worst}");
    }

    private static Preprocessing? Preprocessing(string kind, int width)
    {
        var random = new Random(width);
        double[] Means(int n) => Enumerable.Range(0, n).Select(_ => random.NextDouble()).ToArray();
        // Every other std is 0 (a constant feature): that feature is only centred.
        double[] Stds(int n) => Enumerable.Range(0, n).Select(i => i % 2 == 1 ? 0 : 0.05 + random.NextDouble() * 0.4).ToArray();
        return kind switch
        {
            "none" => null,
            "scale" => new Preprocessing(255, StandardizeMode.None, [], [], 1),
            "per-feature" => new Preprocessing(255, StandardizeMode.PerFeature, Means(width), Stds(width), 1),
            "per-channel" => new Preprocessing(255, StandardizeMode.PerChannel, Means(3), Stds(3), 3),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }
}

// Runs an exported model in ONNX Runtime: raw features in, the "logits" and "probabilities" outputs back.
using DistTrain.Core.Export;
using Microsoft.ML.OnnxRuntime;

namespace DistTrain.Tests.Export;

public sealed class OnnxRun : IDisposable
{
    private readonly InferenceSession _session;

    public OnnxRun(byte[] model)
    {
        // One intra-op thread: tests run in parallel on a 2-core machine.
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        _session = new InferenceSession(model, options);
    }

    public InferenceSession Session => _session;

    public (float[] Logits, float[] Probabilities) Run(float[] features, int rows)
    {
        int width = features.Length / rows;
        using var input = OrtValue.CreateTensorValueFromMemory(features, [rows, width]);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, [OnnxExporter.InputName], [input],
            [OnnxExporter.LogitsName, OnnxExporter.ProbabilitiesName]);
        foreach (var output in outputs)
            Assert.Equal(rows, output.GetTensorTypeAndShape().Shape[0]);
        return (outputs[0].GetTensorDataAsSpan<float>().ToArray(), outputs[1].GetTensorDataAsSpan<float>().ToArray());
    }

    public void Dispose() => _session.Dispose();
}

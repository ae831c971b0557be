// `disttrain export --model W.safetensors --config FILE --onnx OUT.onnx`: the trained model as ONNX, taking raw
// features (the saved preprocessing is the graph's first nodes) and giving logits and class probabilities.
using DistTrain.Core.Export;

namespace DistTrain.Coordinator.Cli;

public static class ExportCommand
{
    public static int Run(CommandOptions flags)
    {
        string output = flags.Require("--onnx");
        var model = SavedModel.Load(flags);
        // Written atomically; a file system failure is already one line naming the path (AtomicFile).
        OnnxExporter.Export(model.Network, model.Weights, model.Preprocessing, output);
        Console.Error.WriteLine($"wrote {output}: input 'input' [batch, {model.Network.Inputs}] raw features, outputs 'logits' and 'probabilities' [batch, {model.Network.Outputs}]");
        return 0;
    }
}

// `disttrain evaluate --model FILE.safetensors --config FILE [--data PATH]`: loss and accuracy of saved weights on
// the config's test set (or its training set when there is none).
using System.Globalization;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Cli;

public static class EvaluateCommand
{
    public static int Run(CommandOptions flags)
    {
        var config = ConfigLoader.Load(flags.Require("--config"), flags);
        var network = new Network(config.Model);
        string modelPath = flags.Require("--model");
        var weights = WeightsFile.Load(modelPath, network);
        var data = DataLoader.Load(config.Data);
        var set = data.Test ?? data.Train;
        network.CheckCompatible(set);
        using var evaluator = new Evaluator(network, config.EffectiveThreads);
        var (loss, accuracy) = evaluator.Evaluate(weights, set);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{(data.Test is null ? "train" : "test")} samples {set.Count}  loss {loss:F4}  accuracy {accuracy * 100:F2}%"));
        return 0;
    }
}

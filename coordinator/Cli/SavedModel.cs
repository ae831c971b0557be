// A trained model as `predict` and `export` load it: the config's network, the weights file, and the preprocessing
// saved with it (or, for a file written before preprocessing was saved, recomputed from the config's training data).
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Cli;

public sealed record SavedModel(TrainingConfig Config, Network Network, float[] Weights, Preprocessing Preprocessing)
{
    public static SavedModel Load(CommandOptions flags)
    {
        var config = ConfigLoader.Load(flags.Require("--config"), flags);
        var network = new Network(config.Model);
        string path = flags.Require("--model");
        var weights = WeightsFile.Load(path, network, out var preprocessing);
        if (preprocessing is null)
        {
            Console.Error.WriteLine($"{path} does not say how its inputs were preprocessed; using the config's data section");
            DataLoader.Load(config.Data, out preprocessing);
        }
        preprocessing.CheckWidth(network.Inputs, path);
        return new SavedModel(config, network, weights, preprocessing);
    }
}

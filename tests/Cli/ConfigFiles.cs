using System.Text.Json.Nodes;

namespace DistTrain.Tests.Cli;

/// <summary>Small training configs on synthetic data, written to a test's temporary directory.</summary>
public static class ConfigFiles
{
    public static JsonObject Blobs(int samples = 2000, int features = 10, int classes = 4, int epochs = 3, int batch = 50, int shard = 16) => new()
    {
        ["model"] = new JsonObject
        {
            ["inputs"] = features,
            ["layers"] = new JsonArray(
                new JsonObject { ["type"] = "linear", ["units"] = 24 },
                new JsonObject { ["type"] = "relu" },
                new JsonObject { ["type"] = "linear", ["units"] = classes }),
            ["loss"] = "softmax_cross_entropy",
        },
        ["data"] = new JsonObject
        {
            ["format"] = "blobs", ["samples"] = samples, ["features"] = features, ["classes"] = classes, ["seed"] = 3, ["scale"] = 1,
        },
        ["optimizer"] = new JsonObject { ["type"] = "adam", ["learningRate"] = 0.01 },
        ["training"] = new JsonObject { ["epochs"] = epochs, ["batchSize"] = batch, ["shardSize"] = shard, ["seed"] = 5 },
    };

    public static string Write(string directory, JsonObject config, string name = "config.json")
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }
}

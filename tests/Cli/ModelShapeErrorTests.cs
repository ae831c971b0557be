// Bad image-layer settings at the command line: one `error:` line naming the layer and what was found, exit 2,
// before any data is trained on; a good image model prints its shape table.
using System.Text.Json.Nodes;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

public class ModelShapeErrorTests
{
    /// <summary>Blobs of 48 features as [3, 4, 4] images: conv2d, relu, flatten, linear.</summary>
    private static JsonObject ImageConfig(Action<JsonArray> change)
    {
        var config = ConfigFiles.Blobs(samples: 200, features: 48, classes: 3, epochs: 1);
        var model = config["model"]!.AsObject();
        model.Remove("inputs");
        model["input"] = new JsonArray(3, 4, 4);
        var layers = new JsonArray(
            new JsonObject { ["type"] = "conv2d", ["channels"] = 5, ["kernel"] = 3, ["padding"] = 1 },
            new JsonObject { ["type"] = "relu" },
            new JsonObject { ["type"] = "flatten" },
            new JsonObject { ["type"] = "linear", ["units"] = 3 });
        change(layers);
        model["layers"] = layers;
        return config;
    }

    private static (int Code, string Stdout, string Stderr) Train(JsonObject config)
    {
        using var dir = new TempDirectory();
        return CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config), "--quiet"]);
    }

    public static TheoryData<string, string> Cases() => new()
    {
        { "kernel", "model.layers[0] (conv2d): kernel 9×9 is larger than the padded input 6×6" },
        { "channels", "model.layers[0] (conv2d): channels must be > 0, found 0" },
        { "stride", "model.layers[0] (conv2d): stride must be ≥ 1, found 0" },
        { "no-flatten", "model.layers[2] (linear): input shape [5, 4, 4] is not flat; add { \"type\": \"flatten\" } before it" },
        { "pool-padding", "model.layers[2] (maxpool2d): padding 2 is more than half the kernel 2" },
        { "dropout", "model.layers[2] (dropout): p must be in [0, 1), found 1.5" },
        { "residual", "model.layers[0]: a residual block needs a non-empty \"layers\" list" },
        { "image-on-flat", "model.layers[4] (conv2d): needs an image input [channels, height, width], found [3]" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ABadLayerIsOneLineNamingIt(string problem, string expected)
    {
        var config = ImageConfig(layers =>
        {
            switch (problem)
            {
                case "kernel": layers[0]!["kernel"] = 9; break;
                case "channels": layers[0]!["channels"] = 0; break;
                case "stride": layers[0]!["stride"] = 0; break;
                case "no-flatten": layers.RemoveAt(2); break;
                case "pool-padding": layers.Insert(2, new JsonObject { ["type"] = "maxpool2d", ["kernel"] = 2, ["padding"] = 2 }); break;
                case "dropout": layers.Insert(2, new JsonObject { ["type"] = "dropout", ["p"] = 1.5 }); break;
                case "residual": layers.Insert(0, new JsonObject { ["type"] = "residual", ["layers"] = new JsonArray() }); break;
                case "image-on-flat": layers.Add(new JsonObject { ["type"] = "conv2d", ["channels"] = 2, ["kernel"] = 1 }); break;
            }
        });
        var (code, _, stderr) = Train(config);
        Assert.True(code == 2, $"exit {code}: {stderr}");
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 1, stderr);
        Assert.Contains(expected, errors[0]);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void AGoodImageModelPrintsItsShapesAndTrains()
    {
        var (code, _, stderr) = Train(ImageConfig(_ => { }));
        Assert.True(code == 0, stderr);
        Assert.Matches(@"(?m)^0\s+conv2d \+ relu\s+\[5, 4, 4\]\s+140$", stderr);
        Assert.Matches(@"(?m)^2\s+flatten\s+\[80\]\s+0$", stderr);
        Assert.Matches(@"(?m)^3\s+linear\s+\[3\]\s+243$", stderr);
    }

    [Fact]
    public void ADatasetOfAnotherImageShapeIsOneLine()
    {
        // A CSV of 48 columns declared as [1, 6, 8] images, for a model of [3, 4, 4].
        using var dir = new TempDirectory();
        var random = new Random(1);
        var lines = Enumerable.Range(0, 30).Select(i => string.Join(",", Enumerable.Range(0, 48).Select(_ => random.NextDouble().ToString("F3", System.Globalization.CultureInfo.InvariantCulture))) + $",{i % 3}");
        string csv = dir.File("images.csv");
        File.WriteAllLines(csv, [string.Join(",", Enumerable.Range(0, 48).Select(j => $"p{j}")) + ",label", .. lines]);
        var config = ImageConfig(_ => { });
        config["data"] = new JsonObject { ["format"] = "csv", ["path"] = csv, ["scale"] = 1, ["shape"] = new JsonArray(1, 6, 8) };
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config), "--quiet"]);
        Assert.True(code == 2, $"exit {code}: {stderr}");
        Assert.Contains("samples have shape [1, 6, 8] but model.input is [3, 4, 4]", stderr);
    }
}

// The image models against PyTorch: from the same initial weights (--init, PyTorch's own initialisation), 20
// full-batch Adam steps on the first 2,000 Fashion-MNIST training images must end no further from a float64 PyTorch
// run than PyTorch's own float32 run is (at most twice its relative L2 distance, over every weight and buffer).
// The fixtures and the script that made them are in tests/fixtures/pytorch (make_cnn_fixtures.py). One shard of
// 2,000 rows, so batch norm's statistics are the whole batch's, as in PyTorch; dropout masks are DistTrain's, which
// the script re-implements.
using System.Text.Json;
using System.Text.Json.Nodes;
using DistTrain.Core.Model;
using DistTrain.Tests.Distributed;

namespace DistTrain.Tests.Core;

public sealed class PyTorchEquivalenceTests : IDisposable
{
    private const int Samples = 2000, Steps = 20;
    private static readonly string Fixtures = Path.Combine(ProcessHarness.RepoRoot, "tests", "fixtures", "pytorch");
    private readonly string _dir = Directory.CreateTempSubdirectory("disttrain-torch-").FullName;
    private readonly ProcessHarness _processes = new();

    [Theory]
    [InlineData("fashion-cnn")]
    [InlineData("fashion-resnet")]
    public void TwentyFullBatchStepsEndNoFurtherFromFloat64PyTorchThanPyTorchFloat32(string model)
    {
        var fixture = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures, model + ".json")))!;
        Assert.Equal(Samples, fixture["samples"]!.GetValue<int>());
        double float32Distance = fixture["float32_relative_distance"]!.GetValue<double>();
        string data = FashionSubset.Write(_dir, Samples);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(ProcessHarness.RepoRoot, "examples", model + ".json")))!.AsObject();
        config["data"] = new JsonObject { ["format"] = "idx", ["path"] = data, ["scale"] = 255 };
        config["optimizer"] = new JsonObject { ["type"] = "adam", ["learningRate"] = 0.001 };
        config.Remove("schedule");
        config["training"] = new JsonObject
        {
            ["epochs"] = Steps, ["batchSize"] = Samples, ["shardSize"] = Samples, ["seed"] = 1,
            ["init"] = Path.Combine(Fixtures, model + ".init.safetensors"),
        };
        string configPath = Path.Combine(_dir, model + ".json"), save = Path.Combine(_dir, model + ".safetensors");
        File.WriteAllText(configPath, config.ToJsonString());
        var run = _processes.Start(ProcessHarness.CoordinatorDll, "train", "--config", configPath, "--threads", "2", "--save", save, "--quiet");
        var (code, output) = ProcessHarness.Wait(run, TimeSpan.FromMinutes(5));
        Assert.True(code == 0, output);

        var ours = SafeTensorsFile.Read(save).Tensors;
        var reference = ReadFloat64(Path.Combine(Fixtures, model + ".final64.safetensors"));
        Assert.Equal(reference.Keys.Order(), ours.Keys.Order());
        double difference = 0, norm = 0;
        foreach (var (name, expected) in reference)
        {
            var actual = ours[name].Data;
            Assert.Equal(expected.Length, actual.Length);
            for (int i = 0; i < expected.Length; i++)
            {
                difference += (actual[i] - expected[i]) * (actual[i] - expected[i]);
                norm += expected[i] * expected[i];
            }
        }
        double distance = Math.Sqrt(difference / norm);
        Assert.True(distance <= 2 * float32Distance,
            $"{model}: relative L2 distance from float64 PyTorch {distance:E3}; PyTorch float32's {float32Distance:E3}");
        // And the run really trained: 20 Adam steps moved the weights well beyond that distance.
        var init = SafeTensorsFile.Read(Path.Combine(Fixtures, model + ".init.safetensors")).Tensors;
        double moved = Math.Sqrt(reference.Sum(t => t.Value.Select((v, i) => (v - init[t.Key].Data[i]) * (v - init[t.Key].Data[i])).Sum()) / norm);
        Assert.True(moved > 100 * distance, $"{model}: the weights moved {moved:E3}, ours are {distance:E3} away");
    }

    /// <summary>A safetensors file of F64 tensors, at full precision.</summary>
    private static Dictionary<string, double[]> ReadFloat64(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        var header = JsonNode.Parse(bytes.AsSpan(8, (int)headerLength))!.AsObject();
        var result = new Dictionary<string, double[]>();
        foreach (var (name, entry) in header)
        {
            if (name == "__metadata__") continue;
            Assert.Equal("F64", entry!["dtype"]!.GetValue<string>());
            var offsets = entry["data_offsets"]!.AsArray();
            int begin = offsets[0]!.GetValue<int>(), end = offsets[1]!.GetValue<int>();
            result[name] = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(
                bytes.AsSpan(8 + (int)headerLength + begin, end - begin)).ToArray();
        }
        return result;
    }

    public void Dispose()
    {
        _processes.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}

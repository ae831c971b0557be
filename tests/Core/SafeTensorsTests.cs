using System.Buffers.Binary;
using System.Text.Json;
using DistTrain.Core;
using DistTrain.Core.Model;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Core;

public class SafeTensorsTests
{
    private static Network Mlp() => new(new ModelSpec
    {
        Inputs = 5,
        Layers = [new() { Type = "linear", Units = 4 }, new() { Type = "relu" }, new() { Type = "linear", Units = 3 }, new() { Type = "tanh" }, new() { Type = "linear", Units = 2 }],
    });

    [Fact]
    public void FileFollowsTheSafetensorsLayoutWithPyTorchSequentialNames()
    {
        using var dir = new TempDirectory();
        var network = Mlp();
        var parameters = network.CreateParameters(3);
        string path = dir.File("w.safetensors");
        WeightsFile.Save(path, network, parameters);

        // Parse by the format's definition, independently of the reader under test.
        var bytes = File.ReadAllBytes(path);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        var names = header.RootElement.EnumerateObject().Select(p => p.Name).Where(n => n != "__metadata__").ToList();
        Assert.Equal(["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"], names);
        var w2 = header.RootElement.GetProperty("2.weight");
        Assert.Equal("F32", w2.GetProperty("dtype").GetString());
        Assert.Equal([3, 4], w2.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        long begin = w2.GetProperty("data_offsets")[0].GetInt64();
        var tensor = network.Tensors.Single(t => t.Name == "2.weight");
        for (int i = 0; i < tensor.Length; i++)
            Assert.Equal(parameters[tensor.Offset + i], BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan((int)(8 + headerLength + begin + 4 * i), 4)));
        Assert.Equal(bytes.Length, 8 + headerLength + header.RootElement.GetProperty("4.bias").GetProperty("data_offsets")[1].GetInt64());

        Assert.Equal(parameters, WeightsFile.Load(path, network));
    }

    [Fact]
    public void MismatchedOrDamagedFilesAreClearErrors()
    {
        using var dir = new TempDirectory();
        var network = Mlp();
        string path = dir.File("w.safetensors");
        WeightsFile.Save(path, network, network.CreateParameters(1));
        var other = new Network(new ModelSpec { Inputs = 6, Layers = [new() { Type = "linear", Units = 4 }] });
        var e = Assert.Throws<UserInputException>(() => WeightsFile.Load(path, other));
        Assert.Contains("0.weight", e.Message);
        Assert.Contains("[4,6]", e.Message);

        File.WriteAllBytes(path, File.ReadAllBytes(path)[..^10]);
        e = Assert.Throws<UserInputException>(() => WeightsFile.Load(path, network));
        Assert.Contains(path, e.Message);

        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Throws<UserInputException>(() => WeightsFile.Load(path, network));
        var random = new Random(5);
        var valid = new MemoryStream();
        SafeTensorsFile.Write(valid, WeightsFile.ToTensors(network, network.CreateParameters(2)), null);
        var original = valid.ToArray();
        for (int trial = 0; trial < 500; trial++)
        {
            var mutated = (byte[])original.Clone();
            for (int f = 0; f < 1 + random.Next(4); f++) mutated[random.Next(Math.Min(mutated.Length, 300))] = (byte)random.Next(256);
            File.WriteAllBytes(path, mutated);
            try { WeightsFile.Load(path, network); }
            catch (UserInputException) { }
        }
    }
}

// The image examples as networks: PyTorch's parameter count, module names (nested inside residual blocks), every
// layer's output shape, the per-layer gradient-norm groups the dashboard names, and the batch-norm buffers kept out
// of training.
using System.Text.Json;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Tests.Distributed;

namespace DistTrain.Tests.Core;

public class ImageNetworkTests
{
    private static Network Example(string name) => new(JsonSerializer.Deserialize<TrainingConfig>(
        File.ReadAllText(Path.Combine(ProcessHarness.RepoRoot, "examples", name + ".json")), TrainingConfig.Json)!.Model);

    [Fact]
    public void FashionCnnHasPyTorchsShapesNamesAndCounts()
    {
        var network = Example("fashion-cnn");
        Assert.Equal(421_642, network.ParameterCount); // sum(p.numel() for p in model.parameters()) in pytorch_cnn.py
        Assert.Equal(["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"], network.Tensors.Select(t => t.Name));
        Assert.Equal([32, 1, 3, 3], network.Tensors[0].Shape);
        Assert.Equal([128, 3136], network.Tensors[4].Shape);
        Assert.Equal(["[32, 28, 28]", "[32, 14, 14]", "[64, 14, 14]", "[64, 7, 7]", "[3136]", "[128]", "[10]"],
            network.Summary.Select(s => s.Output.ToString()));
        Assert.Equal(["0 conv2d", "3 conv2d", "7 linear", "9 linear"], network.Groups.Select(g => g.Name));
        // 2·(9·32·784 + 288·64·196 + 3136·128 + 128·10) MACs forward, ×3 but the first layer's missing input gradient.
        double macs1 = 9.0 * 32 * 784, macs2 = 288.0 * 64 * 196, macs3 = 3136.0 * 128, macs4 = 1280;
        Assert.Equal(2 * (2 * macs1 + 3 * (macs2 + macs3 + macs4)), network.TrainingFlopsPerSample(), 6);
    }

    [Fact]
    public void ResidualNamesNestAsAPyTorchModuleWouldAndBuffersAreNotTrained()
    {
        var network = Example("fashion-resnet");
        var names = network.Tensors.Select(t => t.Name).ToList();
        Assert.Contains("4.body.0.weight", names);
        Assert.Contains("4.body.1.running_var", names);
        Assert.Contains("6.projection.weight", names);
        Assert.Contains("6.projection.bias", names);
        Assert.DoesNotContain("4.projection.weight", names); // same shape in and out: the identity shortcut
        Assert.Equal([32, 16, 1, 1], network.Tensors.Single(t => t.Name == "6.projection.weight").Shape);
        Assert.Equal([], network.Tensors.Single(t => t.Name == "1.num_batches_tracked").Shape);
        Assert.All(network.Tensors.Where(t => t.Name.Contains("running_") || t.Name.EndsWith("num_batches_tracked", StringComparison.Ordinal)),
            t => Assert.False(t.Trainable));
        Assert.Equal(5, network.Statistics.Count);
        // Groups cover only trainable values, and name the layer kinds.
        Assert.Contains("1 batchnorm2d", network.Groups.Select(g => g.Name));
        Assert.Contains("6.projection conv2d", network.Groups.Select(g => g.Name));
        Assert.Equal(network.Tensors.Where(t => t.Trainable).Sum(t => t.Length), network.Groups.Sum(g => g.Length));
        // Offsets tile the buffer exactly once.
        var covered = new bool[network.ParameterCount];
        foreach (var t in network.Tensors)
            for (int i = t.Offset; i < t.Offset + t.Length; i++) { Assert.False(covered[i], t.Name); covered[i] = true; }
        Assert.All(covered, Assert.True);
    }
}

using System.Globalization;
using System.Runtime.InteropServices;
using DistTrain.Coordinator.Cli;
using DistTrain.Coordinator.Distributed;
using DistTrain.Core;
using DistTrain.Core.Api;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Api;

public class SequentialTrainingTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private static TrainingConfig SpiralsConfig() =>
        ConfigLoader.Load(SequentialBuilderTests.ExampleConfig("spirals.json"), environment: NoEnvironment);

    private static void AssertSameBytes(float[] expected, float[] actual) =>
        Assert.True(MemoryMarshal.AsBytes(expected.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(actual.AsSpan())),
            "weights differ");

    [Fact]
    public async Task ApiTrainingEqualsTheTrainerOnTheSameConfigBitForBit()
    {
        var config = SpiralsConfig();
        var network = new Network(config.Model);
        var data = DataLoader.Load(config.Data);
        string fingerprint = Fingerprint.Compute(data);
        float[] direct;
        using (var local = new LocalGradientSource(network, data.Train, config.EffectiveThreads))
            direct = await new Trainer(config, network, data, fingerprint, local).RunAsync();

        // Written out in code, as the README shows.
        var model = Sequential.Create(inputs: 2).Linear(64).Tanh().Linear(3).Loss(LossFunction.SoftmaxCrossEntropy);
        var fluent = model.Train(TrainingData.Spirals(samples: 3000, classes: 3, noise: 0.2, seed: 7),
            o => o.Epochs(20).BatchSize(100).ShardSize(25).Adam(0.01).Seed(1).Threads(1));
        Assert.Equal(fingerprint, fluent.DataFingerprint);
        AssertSameBytes(direct, fluent.Weights);
        Assert.Same(fluent.Weights, model.Weights);
        Assert.Equal(20, fluent.Epochs.Count);
        Assert.True(fluent.TrainAccuracy > 0.9, $"train accuracy {fluent.TrainAccuracy}");
        Assert.Equal(data.Test!.Count, fluent.Test!.Value.Samples);

        // Taken from the config's sections.
        var fromConfig = Sequential.FromSpec(config.Model).Train(TrainingData.Load(config.Data), o => o.FromConfig(config));
        AssertSameBytes(direct, fromConfig.Weights);
        Assert.Equal(config.TrajectoryKey(), fromConfig.Config.TrajectoryKey());
    }

    [Fact]
    public async Task DistributedFromCodeWithTwoInProcessWorkersEqualsLocal()
    {
        var data = TrainingData.Blobs(samples: 800, features: 6, classes: 4, seed: 3);
        Sequential Model() => Sequential.Create(6).Linear(24).ReLU().Linear(4).Loss(LossFunction.SoftmaxCrossEntropy);
        void Options(TrainingOptions o) => o.Epochs(3).BatchSize(64).ShardSize(8).Adam(0.01).Seed(5);

        var local = await Model().TrainAsync(data, Options);
        var messages = new List<string>();
        var distributed = await Model().TrainAsync(data, o =>
        {
            Options(o);
            o.InProcessWorkers(2, m => { lock (messages) messages.Add(m); });
        });
        AssertSameBytes(local.Weights, distributed.Weights);
        Assert.Equal(local.TrainAccuracy, distributed.TrainAccuracy);
        Assert.Contains(messages, m => m.Contains("2 worker(s) ready", StringComparison.Ordinal));

        var typo = Assert.Throws<UserInputException>(() => new TrainingOptions().Cluster(["--wokers", "2"]));
        Assert.Contains("--wokers", typo.Message);
    }

    [Fact]
    public async Task RemoteWorkerRegisteringAtTheListenUrlTrainsTheSameWeights()
    {
        using var cache = new TempDirectory();
        using var processes = new Distributed.ProcessHarness();
        var data = TrainingData.Spirals(samples: 300, seed: 4);
        Sequential Model() => Sequential.Create(2).Linear(16).Tanh().Linear(3);
        void Options(TrainingOptions o) => o.Epochs(2).BatchSize(50).ShardSize(10).Sgd(0.1, momentum: 0.9).Seed(2);

        var local = await Model().TrainAsync(data, Options);
        string url = $"http://127.0.0.1:{Distributed.ProcessHarness.FreePort()}";
        var remote = Model().TrainAsync(data, o =>
        {
            Options(o);
            o.RemoteWorkers(url, expectWorkers: 1);
        });
        var worker = processes.Start(Distributed.ProcessHarness.WorkerDll,
            "--coordinator", url, "--threads", "1", "--cache-dir", cache.Path);
        var finished = await Task.WhenAny(remote, Task.Delay(TimeSpan.FromMinutes(1)));
        Assert.True(finished == remote, "no result within a minute; worker output:\n" + Distributed.ProcessHarness.Text(worker.Output));
        AssertSameBytes(local.Weights, (await remote).Weights);
    }

    [Fact]
    public void SavedModelLoadsBackAndTheCommandLineEvaluatesIt()
    {
        using var dir = new TempDirectory();
        var config = SpiralsConfig();
        var model = Sequential.FromSpec(config.Model);
        var result = model.Train(TrainingData.Load(config.Data), o => o.FromConfig(config).Epochs(3));
        string path = dir.File("spirals.safetensors");
        model.Save(path);

        var file = SafeTensorsFile.Read(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(result.DataFingerprint, file.Metadata[WeightsFile.FingerprintKey]);
        AssertSameBytes(result.Weights, WeightsFile.Load(path, new Network(config.Model)));

        var loaded = Sequential.Load(path);
        AssertSameBytes(result.Weights, loaded.Weights!);
        Assert.Equal(model.ToString(), loaded.ToString());
        Assert.Equal(result.DataFingerprint, loaded.DataFingerprint);
        var data = TrainingData.Load(config.Data);
        Assert.Equal(result.Test, loaded.Evaluate(data.Test!));
        var logits = loaded.Predict(data.Test!.Features);
        Assert.Equal(data.Test.Count * 3, logits.Length);
        Assert.Equal(model.Predict(data.Test.Features), logits);

        var (code, stdout, stderr) = CliProcess.Run(["evaluate", "--model", path, "--config", SequentialBuilderTests.ExampleConfig("spirals.json")]);
        Assert.True(code == 0, stderr);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"accuracy {result.TestAccuracy * 100:F2}%"), stdout);

        string foreign = dir.File("foreign.safetensors");
        WeightsFile.Save(foreign, new Network(config.Model), result.Weights);
        Assert.Contains("Sequential.Load(path, spec)", Assert.Throws<UserInputException>(() => Sequential.Load(foreign)).Message);
        AssertSameBytes(result.Weights, Sequential.Load(foreign, config.Model).Weights!);
    }

    [Fact]
    public void PreprocessingOfTheTrainingDataTravelsWithTheSavedAndExportedModel()
    {
        using var dir = new TempDirectory();
        var spec = new DataSpec { Format = "blobs", Samples = 300, Features = 6, Classes = 3, Scale = 4, Standardize = "per-channel", Channels = 2 };
        var data = TrainingData.Load(spec);
        var model = Sequential.Create(6).Linear(8).ReLU().Linear(3).Loss(LossFunction.SoftmaxCrossEntropy);
        model.Train(data, o => o.Epochs(2).BatchSize(50).Seed(3).Threads(1));
        Assert.Equal(StandardizeMode.PerChannel, model.Preprocessing!.Mode);
        Assert.Equal(data.Preprocessing, model.Preprocessing);

        string path = dir.File("blobs.safetensors");
        model.Save(path);
        Assert.Equal(model.Preprocessing, Sequential.Load(path).Preprocessing);
        WeightsFile.Load(path, new Network(model.ToSpec()), out var saved);
        Assert.Equal(model.Preprocessing, saved);

        // The ONNX model takes raw features; Predict takes them preprocessed, as training saw them.
        model.ExportOnnx(dir.File("blobs.onnx"));
        var raw = DataLoader.LoadRaw(spec, out _).Test!;
        using var onnx = new Export.OnnxRun(File.ReadAllBytes(dir.File("blobs.onnx")));
        var (logits, _) = onnx.Run(raw.Features, raw.Count);
        float[] expected = model.Predict(data.Test!.Features);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], logits[i], 1e-4f * (1 + Math.Abs(expected[i])));
    }
}

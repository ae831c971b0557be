// The example Fashion-MNIST model, briefly trained, exported with its preprocessing and run in ONNX Runtime on
// the 10,000 raw test images: the same probabilities and the same accuracy as the evaluator's.
using DistTrain.Coordinator.Cli;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Optim;
using DistTrain.Core.Training;
using DistTrain.Tests.Data;
using Xunit.Abstractions;

namespace DistTrain.Tests.Export;

public class FashionMnistOnnxTests(ITestOutputHelper output)
{
    private const int Steps = 300;

    [FashionMnistFact]
    public async Task ExportedExampleModelMatchesTheEvaluatorOnTheTestImages()
    {
        var config = ConfigLoader.Load(Path.Combine(Distributed.ProcessHarness.RepoRoot, "examples", "fashion-mnist.json"));
        var split = DataLoader.Load(config.Data, out var preprocessing);
        var network = new Network(config.Model);
        var parameters = await Train(network, split.Train, config);

        var test = split.Test!;
        using var evaluator = new Evaluator(network, threads: 2);
        double accuracy = evaluator.Evaluate(parameters, test).Accuracy;
        using var predictor = new Predictor(network, threads: 2);
        var expected = predictor.Predict(parameters, test);

        string images = Path.Combine(DataSpec.DefaultIdxDirectory, MnistLayout.TestImages + ".gz");
        float[] raw = IdxReader.ReadImages(images).Widened();
        using var onnx = new OnnxRun(OnnxExportTests.Export(network, parameters, preprocessing));
        var (logits, probabilities) = onnx.Run(raw, test.Count);

        Assert.Equal(10_000, test.Count);
        Assert.InRange(accuracy, 0.75, 1); // trained, so the outputs are confident and the comparison is sharp
        OnnxExportTests.AssertClose(expected, logits, probabilities);
        Assert.Equal(accuracy, expected.Accuracy(test.Labels));
        int onnxCorrect = Enumerable.Range(0, test.Count)
            .Count(r => network.Loss.PredictedClass(logits.AsSpan(r * 10, 10)) == test.Labels[r]);
        Assert.Equal(accuracy, (double)onnxCorrect / test.Count);
        output.WriteLine($"accuracy {accuracy:P2} after {Steps} steps; largest probability difference " +
            $"{expected.Probabilities.Zip(probabilities, (a, b) => Math.Abs(a - b)).Max():E2}");
    }

    private static async Task<float[]> Train(Network network, Dataset train, DistTrain.Core.Training.TrainingConfig config)
    {
        var parameters = network.CreateParameters(unchecked((ulong)config.Training.Seed));
        using var source = new LocalGradientSource(network, train, threads: 2);
        var step = new TrainingStep(network, parameters,
            OptimizerFactory.Create(config.Optimizer, network.ParameterCount),
            ScheduleFactory.Create(config.Schedule, config.Optimizer.LearningRate, Steps), config.StepOptions(), source);
        int batch = config.Training.BatchSize;
        var order = Sampler.EpochPermutation(unchecked((ulong)config.Training.Seed), 0, train.Count);
        for (int s = 0; s < Steps; s++)
            await step.RunAsync(new ArraySegment<int>(order, s * batch, batch));
        return parameters;
    }
}

using System.Text.Json;
using DistTrain.Coordinator.Cli;
using DistTrain.Core;
using DistTrain.Core.Api;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Api;

public class SequentialBuilderTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    internal static string ExampleConfig(string name) =>
        Path.Combine(Distributed.ProcessHarness.RepoRoot, "examples", name);

    // The model as configured; "seed" is the run's (training.seed, which the config copies in for dropout masks).
    private static string Json(ModelSpec spec)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(spec, TrainingConfig.Json))!.AsObject();
        node.Remove("seed");
        return node.ToJsonString();
    }

    [Fact]
    public void BuilderProducesTheSpiralsExampleModel()
    {
        var config = ConfigLoader.Load(ExampleConfig("spirals.json"), environment: NoEnvironment);
        var model = Sequential.Create(inputs: 2).Linear(64).Tanh().Linear(3).Loss(LossFunction.SoftmaxCrossEntropy);
        Assert.Equal(Json(config.Model), Json(model.ToSpec()));
    }

    [Fact]
    public void BuilderProducesTheImageExampleModels()
    {
        var cnn = Sequential.Create(1, 28, 28)
            .Conv2d(32, 3, padding: 1).ReLU().MaxPool2d(2)
            .Conv2d(64, 3, padding: 1).ReLU().MaxPool2d(2)
            .Flatten().Linear(128).ReLU().Linear(10).Loss(LossFunction.SoftmaxCrossEntropy);
        Assert.Equal(Json(ConfigLoader.Load(ExampleConfig("fashion-cnn.json"), environment: NoEnvironment).Model), Json(cnn.ToSpec()));

        var resnet = Sequential.Create(1, 28, 28)
            .Conv2d(16, 3, padding: 1, bias: false).BatchNorm2d().ReLU().MaxPool2d(2)
            .Residual(f => f.Conv2d(16, 3, padding: 1, bias: false).BatchNorm2d().ReLU().Conv2d(16, 3, padding: 1, bias: false).BatchNorm2d())
            .ReLU()
            .Residual(f => f.Conv2d(32, 3, stride: 2, padding: 1, bias: false).BatchNorm2d().ReLU().Conv2d(32, 3, padding: 1, bias: false).BatchNorm2d())
            .ReLU().GlobalAvgPool().Flatten().Dropout(0.25).Linear(10).Loss(LossFunction.SoftmaxCrossEntropy);
        var bound = ConfigLoader.Load(ExampleConfig("fashion-resnet.json"), environment: NoEnvironment).Model;
        Assert.Equal(Json(bound), Json(resnet.ToSpec()));
        // A spec's copy keeps every field of every layer, nested ones included.
        Assert.Equal(Json(bound), Json(Sequential.FromSpec(bound).ToSpec()));
        Assert.Equal(784, resnet.Inputs);
    }

    [Fact]
    public void BuilderProducesWhatTheSameJsonBinds()
    {
        using var dir = new TempDirectory();
        string path = dir.Write("config.json", """
            {
              "model": {
                "inputs": 10,
                "layers": [
                  { "type": "linear", "units": 32 }, { "type": "relu" },
                  { "type": "linear", "units": 16 }, { "type": "sigmoid" },
                  { "type": "linear", "units": 1 }
                ],
                "loss": "binary_cross_entropy_with_logits",
                "init": "glorot"
              },
              "data": { "format": "blobs", "features": 10, "classes": 2 }
            }
            """);
        var bound = ConfigLoader.Load(path, environment: NoEnvironment).Model;
        var built = Sequential.Create(10).Linear(32).ReLU().Linear(16).Sigmoid().Linear(1)
            .Init(WeightInit.Glorot).Loss(LossFunction.BinaryCrossEntropyWithLogits).ToSpec();
        Assert.Equal(Json(bound), Json(built));
        Assert.Equal(Json(bound), Json(Sequential.FromSpec(bound).ToSpec()));
    }

    [Fact]
    public void BadBuilderInputNamesTheParameterAndValue()
    {
        var inputs = Assert.Throws<ArgumentOutOfRangeException>(() => Sequential.Create(0));
        Assert.Equal("inputs", inputs.ParamName);
        Assert.Equal(0, inputs.ActualValue);

        var units = Assert.Throws<ArgumentOutOfRangeException>(() => Sequential.Create(2).Linear(0));
        Assert.Equal("units", units.ParamName);
        Assert.Contains("'0'", units.Message);
        Assert.Equal(-3, Assert.Throws<ArgumentOutOfRangeException>(() => Sequential.Create(2).Linear(-3)).ActualValue);

        var loss = Assert.Throws<ArgumentOutOfRangeException>(() => Sequential.Create(2).Linear(3).Loss((LossFunction)42));
        Assert.Equal("loss", loss.ParamName);
        Assert.Contains("42", loss.Message);
        Assert.Contains("7", Assert.Throws<ArgumentOutOfRangeException>(() => Sequential.Create(2).Init((WeightInit)7)).Message);
    }

    [Fact]
    public void CallsOutOfOrderSayWhichCallAndWhy()
    {
        var early = Assert.Throws<InvalidOperationException>(() => Sequential.Create(2).Loss(LossFunction.MeanSquaredError));
        Assert.Contains("Loss(MeanSquaredError) needs a Linear layer", early.Message);
        Assert.Throws<InvalidOperationException>(() => Sequential.Create(2).ReLU().Loss(LossFunction.SoftmaxCrossEntropy));

        var after = Assert.Throws<InvalidOperationException>(() =>
            Sequential.Create(2).Linear(3).Loss(LossFunction.SoftmaxCrossEntropy).Linear(4));
        Assert.Contains("Linear(4) after the loss", after.Message);

        var data = TrainingData.Spirals(samples: 30);
        var empty = Assert.Throws<InvalidOperationException>(() => Sequential.Create(2).Train(data));
        Assert.Contains("no Linear layer", empty.Message);
        Assert.Contains("no weights yet", Assert.Throws<InvalidOperationException>(() =>
            Sequential.Create(2).Linear(3).Save("never.safetensors")).Message);
    }

    [Fact]
    public void BadTrainingOptionsNameTheParameterAndValue()
    {
        var options = new TrainingOptions();
        Assert.Equal("epochs", Assert.Throws<ArgumentOutOfRangeException>(() => options.Epochs(0)).ParamName);
        Assert.Equal("batchSize", Assert.Throws<ArgumentOutOfRangeException>(() => options.BatchSize(-1)).ParamName);
        var rate = Assert.Throws<ArgumentOutOfRangeException>(() => options.Adam(-0.5));
        Assert.Equal("learningRate", rate.ParamName);
        Assert.Equal(-0.5, rate.ActualValue);
        Assert.Throws<ArgumentOutOfRangeException>(() => options.Sgd(double.NaN));
        Assert.Equal("maxNorm", Assert.Throws<ArgumentOutOfRangeException>(() => options.ClipNorm(-1)).ParamName);
        Assert.Contains("beta1", Assert.Throws<UserInputException>(() => options.Adam(0.01, beta1: 1.5)).Message);
        Assert.Equal("samples", Assert.Throws<ArgumentOutOfRangeException>(() => TrainingData.Spirals(samples: 2, classes: 3)).ParamName);
    }

    [Fact]
    public void DataThatDoesNotFitTheModelIsRefusedBeforeTraining()
    {
        var data = TrainingData.Blobs(samples: 40, features: 3);
        var model = Sequential.Create(2).Linear(3);
        var e = Assert.Throws<UserInputException>(() => model.Train(data, o => o.Epochs(1)));
        Assert.Contains("3 features but model.inputs is 2", e.Message);
    }
}

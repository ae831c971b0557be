// DistTrain.Core as a library: builds a 2-64-64-3 MLP in code, trains it on the spirals data set with local threads,
// saves the weights and an ONNX model, and exits non-zero when the final weights classify less than 95% of the training set.
using DistTrain.Core.Api;

var data = TrainingData.Spirals(samples: 3000, classes: 3, noise: 0.2, seed: 7);

var model = Sequential.Create(inputs: 2)
    .Linear(64).ReLU()
    .Linear(64).ReLU()
    .Linear(3)
    .Loss(LossFunction.SoftmaxCrossEntropy);

var result = model.Train(data, o => o
    .Epochs(30).BatchSize(100).ShardSize(25).Adam(0.01).Seed(1)
    .OnEpoch(e => { if (e.Epoch % 10 == 0) Console.WriteLine($"epoch {e.Epoch,3}  loss {e.TrainLoss:F4}  test accuracy {e.TestAccuracy * 100:F2}%"); }));

string path = args.Length > 0 ? args[0] : "spirals.safetensors";
model.Save(path);
model.ExportOnnx(Path.ChangeExtension(path, ".onnx"));
Console.WriteLine($"saved {model} to {path} and {Path.ChangeExtension(path, ".onnx")}");
Console.WriteLine($"train accuracy {result.TrainAccuracy * 100:F2}%  test accuracy {result.TestAccuracy * 100:F2}%");
return result.TrainAccuracy >= 0.95 ? 0 : 1;

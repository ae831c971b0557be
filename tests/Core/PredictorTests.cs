using DistTrain.Core;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Tests.Core;

public class PredictorTests
{
    [Theory]
    [InlineData(1, "1", "mean_squared_error", 1)]
    [InlineData(7, "8 relu 9", "softmax_cross_entropy", 7)]
    [InlineData(9, "tanh 15 sigmoid sigmoid 17 5", "softmax_cross_entropy", 33)] // activations on the input and in a row
    [InlineData(33, "17 relu 1", "binary_cross_entropy_with_logits", 1031)] // one output; more rows than one chunk
    [InlineData(16, "33 tanh 7 sigmoid", "multiclass_hinge", 37)] // ends with an activation
    [InlineData(17, "13 relu 4", "binary_cross_entropy_with_logits", 2)]
    public void MatchesTheFloat64ReferenceForwardPass(int inputs, string layers, string loss, int rows)
    {
        var network = TestModels.Network(inputs, layers, loss);
        var parameters = TestModels.Parameters(network, seed: inputs);
        var data = TestModels.Data(network, rows, seed: rows);
        using var predictor = new Predictor(network, threads: 2);

        var predictions = predictor.Predict(parameters, data);

        Assert.Equal((rows, network.Outputs), (predictions.Rows, predictions.Width));
        var reference = new ReferenceMlp(network.Spec);
        double[] p = Array.ConvertAll(parameters, v => (double)v);
        bool sigmoid = loss == "binary_cross_entropy_with_logits";
        for (int r = 0; r < rows; r++)
        {
            double[] z = reference.Outputs(p, Array.ConvertAll(data.Row(r).ToArray(), v => (double)v));
            double[] expected = sigmoid ? z.Select(v => 1 / (1 + Math.Exp(-v))).ToArray() : Softmax(z);
            for (int j = 0; j < z.Length; j++)
            {
                Assert.True(Math.Abs(predictions.LogitsOf(r)[j] - z[j]) <= 2e-5 * (1 + Math.Abs(z[j])),
                    $"row {r} logit {j}: {predictions.LogitsOf(r)[j]} vs {z[j]}");
                Assert.True(Math.Abs(predictions.ProbabilitiesOf(r)[j] - expected[j]) <= 1e-6,
                    $"row {r} probability {j}: {predictions.ProbabilitiesOf(r)[j]} vs {expected[j]}");
            }
            // The reference's class, unless float32 rounding can have decided a near tie.
            int referenceClass = z.Length == 1 ? (z[0] > 0 ? 1 : 0) : Array.IndexOf(z, z.Max());
            int predicted = predictions.Classes[r];
            if (predicted != referenceClass)
                Assert.True(z.Length == 1 ? Math.Abs(z[0]) < 1e-5 : z.Max() - z[predicted] < 1e-5,
                    $"row {r}: predicted {predicted}, reference {referenceClass}");
        }
    }

    [Fact]
    public void ResultsAreTheSameForAnyThreadCount()
    {
        var network = TestModels.Network(19, "23 relu 11 tanh 6", "softmax_cross_entropy");
        var parameters = TestModels.Parameters(network, seed: 4);
        var data = TestModels.Data(network, 3001, seed: 5);
        Predictions Run(int threads)
        {
            using var predictor = new Predictor(network, threads);
            return predictor.Predict(parameters, data);
        }

        var one = Run(1);
        foreach (int threads in new[] { 2, 3 })
        {
            var many = Run(threads);
            Assert.Equal(one.Logits, many.Logits);
            Assert.Equal(one.Probabilities, many.Probabilities);
            Assert.Equal(one.Classes, many.Classes);
        }
    }

    [Theory]
    [InlineData("softmax_cross_entropy", 10)]
    [InlineData("mean_squared_error", 10)]
    [InlineData("multiclass_hinge", 7)]
    [InlineData("binary_cross_entropy_with_logits", 1)]
    [InlineData("binary_cross_entropy_with_logits", 3)]
    public void PredictedClassAccuracyEqualsTheEvaluatorsAccuracy(string loss, int outputs)
    {
        var network = TestModels.Network(12, $"20 relu {outputs}", loss);
        var parameters = TestModels.Parameters(network, seed: outputs);
        var data = TestModels.Data(network, 2100, seed: 8);
        using var predictor = new Predictor(network, threads: 2);
        using var evaluator = new Evaluator(network, threads: 2);

        double accuracy = predictor.Predict(parameters, data).Accuracy(data.Labels);

        Assert.Equal(evaluator.Evaluate(parameters, data).Accuracy, accuracy);
        Assert.InRange(accuracy, 0.01, 0.99); // neither all right nor all wrong, so the comparison says something
    }

    [Fact]
    public void ProbabilitiesOfASoftmaxRowSumToOne()
    {
        var network = TestModels.Network(5, "6 relu 9", "multiclass_hinge");
        var predictions = Predict(network, TestModels.Data(network, 50, seed: 1));
        for (int r = 0; r < predictions.Rows; r++)
            Assert.Equal(1.0, predictions.ProbabilitiesOf(r).ToArray().Sum(v => (double)v), 1e-6);
    }

    [Fact]
    public void NoRowsGiveNoPredictions()
    {
        var network = TestModels.Network(4, "3", "softmax_cross_entropy");
        using var predictor = new Predictor(network, threads: 2);
        var predictions = predictor.Predict(TestModels.Parameters(network, 1), []);
        Assert.Equal(0, predictions.Rows);
        Assert.Empty(predictions.Classes);
    }

    [Fact]
    public void DataOfTheWrongWidthIsAUserError()
    {
        var network = TestModels.Network(4, "3", "softmax_cross_entropy");
        var other = TestModels.Network(5, "3", "softmax_cross_entropy");
        using var predictor = new Predictor(network, threads: 1);
        var error = Assert.Throws<UserInputException>(() =>
            predictor.Predict(TestModels.Parameters(network, 1), TestModels.Data(other, 3, seed: 1)));
        Assert.Equal("random: samples have 5 features but model.inputs is 4", error.Message);
        Assert.Throws<ArgumentException>(() => predictor.Predict(new float[network.ParameterCount + 1], new float[4]));
    }

    private static Predictions Predict(Network network, DistTrain.Core.Data.Dataset data)
    {
        using var predictor = new Predictor(network, threads: 2);
        return predictor.Predict(TestModels.Parameters(network, seed: 3), data);
    }

    private static double[] Softmax(double[] z)
    {
        double max = z.Max();
        double sum = z.Sum(v => Math.Exp(v - max));
        return z.Select(v => Math.Exp(v - max) / sum).ToArray();
    }
}

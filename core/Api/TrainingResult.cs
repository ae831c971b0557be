// What a Sequential model's training run returns: the final weights, every epoch's metrics as the run reported them,
// and the final weights evaluated on the training and test sets.
using DistTrain.Core.Training;

namespace DistTrain.Core.Api;

public sealed class TrainingResult
{
    internal TrainingResult(TrainingConfig config, float[] weights, IReadOnlyList<EpochMetrics> epochs, string fingerprint,
        Evaluation train, Evaluation? test)
    {
        Config = config;
        Weights = weights;
        Epochs = epochs;
        DataFingerprint = fingerprint;
        Train = train;
        Test = test;
    }

    /// <summary>The complete configuration the run used (the same object a JSON config binds to).</summary>
    public TrainingConfig Config { get; }
    /// <summary>The final weights as one flat buffer (the model's tensors "0.weight", "0.bias", ... in order).</summary>
    public float[] Weights { get; }
    /// <summary>One entry per epoch run; train loss and accuracy there are running figures over the epoch's steps.</summary>
    public IReadOnlyList<EpochMetrics> Epochs { get; }
    /// <summary>SHA-256 fingerprint of the data trained on (saved with the weights).</summary>
    public string DataFingerprint { get; }
    /// <summary>The final weights on the whole training set.</summary>
    public Evaluation Train { get; }
    /// <summary>The final weights on the test set; null when the data has none.</summary>
    public Evaluation? Test { get; }

    public double TrainLoss => Train.Loss;
    public double TrainAccuracy => Train.Accuracy;
    /// <summary>NaN when the data has no test set.</summary>
    public double TestAccuracy => Test?.Accuracy ?? double.NaN;
}

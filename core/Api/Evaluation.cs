// The figures of one evaluation: a model's weights run forward over every sample of a dataset.
namespace DistTrain.Core.Api;

/// <summary>Mean loss and accuracy (0..1) of a model's weights on <paramref name="Samples"/> samples.</summary>
public readonly record struct Evaluation(double Loss, double Accuracy, int Samples);

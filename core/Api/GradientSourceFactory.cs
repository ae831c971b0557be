// How a training run gets its gradient source: local threads by default, or whatever a factory builds once the
// run's network, data and fingerprint are known (gRPC workers need all three before the first step).
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Core.Api;

/// <summary>What a run is about to train: the validated config, its network, the data and the data's fingerprint.</summary>
public sealed record TrainingContext(TrainingConfig Config, Network Network, DataSplit Data, string Fingerprint);

/// <summary>
/// Builds the gradient source of one run. The run disposes the source when it ends if it is
/// <see cref="IAsyncDisposable"/> or <see cref="IDisposable"/>.
/// </summary>
public delegate ValueTask<IGradientSource> GradientSourceFactory(TrainingContext context, CancellationToken cancellationToken);

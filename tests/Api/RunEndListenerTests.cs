// A gradient source a run owns hears how the run ended — finished, failed with the reason, or interrupted — once,
// before it is disposed (a cluster tells its workers from this); a source the run does not own hears nothing.
using DistTrain.Core.Api;
using DistTrain.Core.Data;
using DistTrain.Core.Training;

namespace DistTrain.Tests.Api;

public sealed class RunEndListenerTests
{
    private sealed class ListeningSource(IGradientSource inner, long failAt = -1, CancellationTokenSource? cancelAt3 = null)
        : IGradientSource, IRunEndListener, IDisposable
    {
        public List<(RunOutcome Outcome, string Detail)> Ends { get; } = [];
        public bool DisposedAfterEnd { get; private set; }

        public ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
        {
            if (request.Step == failAt) throw new InvalidOperationException("the source broke");
            if (request.Step == 3) cancelAt3?.Cancel();
            return inner.ComputeAsync(request, result, cancellationToken);
        }

        public void OnRunEnded(RunOutcome outcome, string detail) => Ends.Add((outcome, detail));
        public void Dispose() => DisposedAfterEnd = Ends.Count == 1;
    }

    private static Sequential Model() => Sequential.Create(2).Linear(8).Tanh().Linear(3);

    private static async Task<ListeningSource> TrainAsync(long failAt = -1, bool cancel = false, bool owned = true)
    {
        var data = TrainingData.Spirals(samples: 300, seed: 4);
        using var cancellation = new CancellationTokenSource();
        ListeningSource? source = null;
        try
        {
            await Model().TrainAsync(data, o =>
            {
                o.Epochs(1).BatchSize(50).ShardSize(10).Seed(2);
                if (owned)
                    o.GradientSource((context, _) =>
                    {
                        source = new ListeningSource(new LocalGradientSource(context.Network, context.Data.Train, 1), failAt, cancel ? cancellation : null);
                        return ValueTask.FromResult<IGradientSource>(source);
                    });
                else
                {
                    source = new ListeningSource(new LocalGradientSource(new DistTrain.Core.Model.Network(Model().ToSpec()), data.Train, 1));
                    o.GradientSource(source);
                }
            }, cancellation.Token);
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException) { }
        return source!;
    }

    [Fact]
    public async Task AnOwnedSourceHearsOnceHowTheRunEndedBeforeItIsDisposed()
    {
        var finished = await TrainAsync();
        Assert.Equal([(RunOutcome.Finished, "")], finished.Ends);
        Assert.True(finished.DisposedAfterEnd);

        var failed = await TrainAsync(failAt: 2);
        Assert.Equal([(RunOutcome.Failed, "the source broke")], failed.Ends);
        Assert.True(failed.DisposedAfterEnd);

        var interrupted = await TrainAsync(cancel: true);
        Assert.Equal([(RunOutcome.Interrupted, "cancelled")], interrupted.Ends);

        // A source handed in ready-made outlives the run: it is neither told nor disposed.
        Assert.Empty((await TrainAsync(owned: false)).Ends);
    }
}

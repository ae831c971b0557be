// A cancelled run (Ctrl+C, SIGTERM) checkpoints its last completed step — when cancelled inside a step, between steps
// or during the last evaluation — writes nothing when no step completed since the newest checkpoint, throws
// OperationCanceledException, and resumes to weights bit-identical to an uninterrupted run's.
using System.Runtime.InteropServices;
using DistTrain.Coordinator.Cli;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Core;

public sealed class TrainerInterruptionTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    /// <summary>Local threads, cancelling the run's token when it is asked for step <paramref name="cancelAt"/> (or never).</summary>
    private sealed class CancellingSource(IGradientSource inner, CancellationTokenSource cancellation, long cancelAt) : IGradientSource
    {
        public async ValueTask ComputeAsync(GradientRequest request, GradientResult result, CancellationToken cancellationToken)
        {
            if (request.Step == cancelAt)
            {
                // As a remote step does: the signal lands while the workers compute, and the step throws.
                cancellation.Cancel();
                cancellationToken.ThrowIfCancellationRequested();
            }
            await inner.ComputeAsync(request, result, cancellationToken);
        }
    }

    /// <summary>Counts checkpoints and can cancel at the end of an epoch (after its evaluation).</summary>
    private sealed class Recorder(CancellationTokenSource cancellation, int cancelAfterEpoch) : TrainingObserver
    {
        public List<long> Checkpoints { get; } = [];
        public override void OnCheckpoint(string path, long step) => Checkpoints.Add(step);
        public override void OnEpoch(EpochMetrics metrics)
        {
            if (metrics.Epoch == cancelAfterEpoch) cancellation.Cancel();
        }
    }

    private TrainingConfig Config(bool resume)
    {
        var config = ConfigLoader.Load(Api.SequentialBuilderTests.ExampleConfig("spirals.json"), environment: new Dictionary<string, string>());
        config.Training.Epochs = 3; // 24 batches each: steps 0..71
        config.Training.Threads = 1;
        config.Training.CheckpointDir = _dir.File("checkpoints");
        config.Training.Resume = resume;
        return config;
    }

    /// <summary>One run on local threads, cancelled at step <paramref name="cancelAt"/> or after epoch <paramref name="cancelAfterEpoch"/>.</summary>
    private async Task<(float[]? Weights, bool Cancelled, List<long> Checkpoints)> RunAsync(bool resume, long cancelAt = -1, int cancelAfterEpoch = -1)
    {
        var config = Config(resume);
        var network = new Network(config.Model);
        var data = DataLoader.Load(config.Data);
        using var cancellation = new CancellationTokenSource();
        using var local = new LocalGradientSource(network, data.Train, 1);
        var recorder = new Recorder(cancellation, cancelAfterEpoch);
        var trainer = new Trainer(config, network, data, Fingerprint.Compute(data), new CancellingSource(local, cancellation, cancelAt), recorder);
        try
        {
            return (await trainer.RunAsync(cancellation.Token), false, recorder.Checkpoints);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            return (null, true, recorder.Checkpoints);
        }
    }

    private static byte[] Bytes(float[] weights) => MemoryMarshal.AsBytes(weights.AsSpan()).ToArray();

    private async Task<byte[]> ReferenceAsync()
    {
        var (weights, cancelled, _) = await RunAsync(resume: false);
        Assert.False(cancelled);
        Directory.Delete(_dir.File("checkpoints"), recursive: true);
        return Bytes(weights!);
    }

    [Fact]
    public async Task CancelledInsideAStepCheckpointsTheStepBeforeAndResumesBitIdentically()
    {
        var reference = await ReferenceAsync();
        // Step 30 is batch 6 of epoch 2: mid-epoch, with the epoch's partial sums to keep.
        var (_, cancelled, checkpoints) = await RunAsync(resume: false, cancelAt: 30);
        Assert.True(cancelled);
        Assert.Equal([24, 30], checkpoints); // the end of epoch 1, then the interrupted position
        var saved = Checkpoint.LoadLatest(_dir.File("checkpoints"), new Network(Config(false).Model), Config(false).TrajectoryKey())!;
        Assert.Equal((30L, 1, 6), (saved.Step, saved.Epoch, saved.BatchInEpoch));

        var (resumed, again, more) = await RunAsync(resume: true);
        Assert.False(again);
        Assert.Equal([48, 72], more);
        Assert.Equal(reference, Bytes(resumed!));
    }

    [Fact]
    public async Task CancelledBeforeTheFirstStepWritesNothing()
    {
        var (_, cancelled, checkpoints) = await RunAsync(resume: false, cancelAt: 0);
        Assert.True(cancelled);
        Assert.Empty(checkpoints);
        Assert.Empty(Checkpoint.List(_dir.File("checkpoints")));
    }

    [Fact]
    public async Task CancelledRightAfterResumingWritesNoSecondCopyOfTheCheckpoint()
    {
        await RunAsync(resume: false, cancelAt: 30);
        // Resumed at step 30 and cancelled before that step completes: the checkpoint on disk already holds step 30.
        var (_, cancelled, checkpoints) = await RunAsync(resume: true, cancelAt: 30);
        Assert.True(cancelled);
        Assert.Empty(checkpoints);
        Assert.Equal([30L, 24L], Checkpoint.List(_dir.File("checkpoints")).Select(c => c.Step));
    }

    [Fact]
    public async Task CancelledDuringTheLastEvaluationStopsAfterTheEndOfRunCheckpointAndResumesToTheSameWeights()
    {
        var reference = await ReferenceAsync();
        // The token is cancelled while epoch 3 is evaluated (its metrics are reported after that): the epoch's
        // checkpoint is written as always, once, and the run still counts as interrupted.
        var (_, cancelled, checkpoints) = await RunAsync(resume: false, cancelAfterEpoch: 3);
        Assert.True(cancelled);
        Assert.Equal([24, 48, 72], checkpoints);
        var (resumed, again, more) = await RunAsync(resume: true);
        Assert.False(again);
        Assert.Empty(more);
        Assert.Equal(reference, Bytes(resumed!));
    }

    public void Dispose() => _dir.Dispose();
}

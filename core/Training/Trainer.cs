// The epoch loop: seeded per-epoch shuffle, mini-batches through the shared TrainingStep, per-epoch evaluation
// and metrics, periodic checkpoints, and resuming from the newest checkpoint at the exact batch it stopped before.
// Cancelled (Ctrl+C, SIGTERM), it checkpoints the last completed step — unless no step completed since the newest
// checkpoint (written, or resumed from), so there is nothing new to keep — and throws OperationCanceledException.
using System.Diagnostics;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Optim;

namespace DistTrain.Core.Training;

public sealed class Trainer
{
    private readonly TrainingConfig _config;
    private readonly Network _network;
    private readonly DataSplit _data;
    private readonly IGradientSource _source;
    private readonly TrainingObserver _observer;
    private readonly string _fingerprint;

    public Trainer(TrainingConfig config, Network network, DataSplit data, string fingerprint, IGradientSource source,
        TrainingObserver? observer = null)
    {
        _config = config;
        _network = network;
        _data = data;
        _fingerprint = fingerprint;
        _source = source;
        _observer = observer ?? new CompositeObserver([]);
        network.CheckCompatible(data.Train);
        if (data.Test is { } test) network.CheckCompatible(test);
    }

    public int BatchesPerEpoch => (_data.Train.Count + _config.Training.BatchSize - 1) / _config.Training.BatchSize;
    public long TotalSteps => (long)_config.Training.Epochs * BatchesPerEpoch;

    /// <summary>Trains to the configured number of epochs and returns the final weights.</summary>
    public async Task<float[]> RunAsync(CancellationToken cancellationToken = default)
    {
        var run = _config.Training;
        var optimizer = OptimizerFactory.Create(_config.Optimizer, _network.ParameterCount);
        var schedule = ScheduleFactory.Create(_config.Schedule, _config.Optimizer.LearningRate, TotalSteps);
        var progress = new EpochProgress();
        int startEpoch = 0, startBatch = 0;
        float[] parameters;
        long skipped = 0, clips = 0, startStep = 0;

        var checkpoint = run.Resume ? Checkpoint.LoadLatest(run.CheckpointDir!, _network, _config.TrajectoryKey(), _observer.OnMessage) : null;
        // A fresh run would overwrite and prune another run's checkpoints step by step: refuse rather than mix them.
        if (!run.Resume && run.CheckpointDir is { Length: > 0 } directory && Checkpoint.List(directory) is [var newest, ..])
            throw new UserInputException(
                $"{directory} holds checkpoints of an earlier run (up to step {newest.Step}); continue it with --resume, or give an empty --checkpoint-dir");
        if (checkpoint is not null)
        {
            CheckResumable(checkpoint);
            parameters = checkpoint.Parameters;
            OptimizerState.Restore(optimizer, checkpoint.OptimizerState, checkpoint.OptimizerSteps);
            (startStep, startEpoch, startBatch) = (checkpoint.Step, checkpoint.Epoch, checkpoint.BatchInEpoch);
            (skipped, clips) = (checkpoint.SkippedSteps, checkpoint.ClipEvents);
            progress = checkpoint.Progress;
            _observer.OnMessage($"resuming from step {startStep} (epoch {startEpoch + 1}, batch {startBatch + 1})");
        }
        else
        {
            if (run.Resume) _observer.OnMessage($"no checkpoint in {run.CheckpointDir}; starting from scratch");
            parameters = run.Init is { Length: > 0 } init
                ? WeightsFile.Load(init, _network)
                : _network.CreateParameters(unchecked((ulong)run.Seed));
        }

        var step = new TrainingStep(_network, parameters, optimizer, schedule, _config.StepOptions(), _source)
        {
            Step = startStep, SkippedSteps = skipped, ClipEvents = clips,
        };
        // The step the newest checkpoint holds, as far as this run knows: nothing to write until a step completes.
        long checkpointed = startStep;
        using var evaluator = new Evaluator(_network, _config.EffectiveThreads);
        int n = _data.Train.Count, batchSize = run.BatchSize, batches = BatchesPerEpoch;
        var permutation = new int[n];
        _observer.OnStart(_network.Spec.Describe(), startStep, TotalSteps);

        for (int epoch = startEpoch; epoch < run.Epochs; epoch++)
        {
            Sampler.EpochPermutation(unchecked((ulong)run.Seed), epoch, n, permutation);
            var epochClock = Stopwatch.StartNew();
            double secondsBefore = progress.TrainSeconds;
            for (int batch = epoch == startEpoch ? startBatch : 0; batch < batches; batch++)
            {
                if (cancellationToken.IsCancellationRequested) StopHere(epoch, batch);
                int start = batch * batchSize;
                var indices = new ArraySegment<int>(permutation, start, Math.Min(batchSize, n - start));
                long t0 = Stopwatch.GetTimestamp();
                StepOutcome outcome;
                try
                {
                    outcome = await step.RunAsync(indices, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    // Cancelled while the source computed: the step was not applied, so the run resumes at this batch.
                    StopHere(epoch, batch);
                    throw;
                }
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                progress.TrainSeconds += seconds;
                progress.LossSum += outcome.LossSum;
                progress.Correct += outcome.Correct;
                progress.Samples += outcome.Samples;
                if (!outcome.Skipped) { progress.GradNormSum += outcome.GradientNorm; progress.Steps++; }
                _observer.OnStep(new StepReport(epoch, batch, batches, outcome, step.LastBlocks, indices, run.ShardSize, seconds));

                // Mid-epoch checkpoints here; the end-of-epoch one follows the epoch's metrics so a crash in
                // between cannot lose that epoch's row.
                if (run.CheckpointEvery > 0 && step.Step % run.CheckpointEvery == 0 && batch < batches - 1)
                    SaveCheckpoint(epoch, batch + 1, progress);
            }

            var (testLoss, testAccuracy) = _data.Test is { } test ? evaluator.Evaluate(parameters, test) : (double.NaN, double.NaN);
            double trainSeconds = progress.TrainSeconds;
            var lastNorms = step.LastLayerNorms.ToArray();
            _observer.OnEpoch(new EpochMetrics(
                epoch + 1, run.Epochs, step.Step,
                progress.Samples > 0 ? progress.LossSum / progress.Samples : double.NaN,
                progress.Samples > 0 ? (double)progress.Correct / progress.Samples : double.NaN,
                testLoss, testAccuracy,
                progress.Steps > 0 ? progress.GradNormSum / progress.Steps : double.NaN,
                trainSeconds > 0 ? progress.Samples / trainSeconds : 0,
                epochClock.Elapsed.TotalSeconds + secondsBefore, trainSeconds,
                schedule.At(Math.Max(0, step.Step - 1)), step.SkippedSteps, step.ClipEvents,
                _network.Groups.Select((g, i) => (g.Name, lastNorms[i])).ToArray()));
            progress.Clear();
            SaveCheckpoint(epoch + 1, 0, progress);
        }
        // Cancelled during the last evaluation: the run stops like any other interrupted one (its end-of-run
        // checkpoint is already written; resuming from it only returns the weights).
        if (cancellationToken.IsCancellationRequested) StopHere(run.Epochs, 0);
        return parameters;

        // An interrupted run resumes exactly at (epoch, batch) with the epoch's partial sums.
        void StopHere(int epoch, int batch)
        {
            if (step.Step != checkpointed) SaveCheckpoint(epoch, batch, progress);
            cancellationToken.ThrowIfCancellationRequested();
        }

        void SaveCheckpoint(int epoch, int batchInEpoch, EpochProgress partial)
        {
            if (run.CheckpointDir is not { Length: > 0 } dir) return;
            string path = Checkpoint.Write(dir, _network, new CheckpointState
            {
                Step = step.Step,
                Epoch = epoch,
                BatchInEpoch = batchInEpoch,
                OptimizerSteps = optimizer.StepCount,
                SkippedSteps = step.SkippedSteps,
                ClipEvents = step.ClipEvents,
                Progress = partial,
                TrajectoryKey = _config.TrajectoryKey(),
                ConfigJson = _config.ToJson(),
                Fingerprint = _fingerprint,
                Parameters = parameters,
                OptimizerState = optimizer.State,
            });
            checkpointed = step.Step;
            _observer.OnCheckpoint(path, step.Step);
        }
    }

    private void CheckResumable(CheckpointState checkpoint)
    {
        if (checkpoint.Fingerprint != _fingerprint)
            throw new UserInputException(
                $"checkpoint at step {checkpoint.Step} was made on data with fingerprint {checkpoint.Fingerprint}, but the data loaded now has {_fingerprint}");
        if (checkpoint.TrajectoryKey != _config.TrajectoryKey())
            throw new UserInputException(
                $"checkpoint at step {checkpoint.Step} was made with different model/optimizer/schedule/batch/shard/seed settings; resume with the same config (saved: {checkpoint.TrajectoryKey})");
    }
}

// How far a run got, for the one line an interrupted run ends with: the phase it was in, the steps done, and the
// checkpoint that holds them (or why there is none). Fed by the Trainer's events; the phase by the train command.
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Reporting;

public sealed class RunProgress : TrainingObserver
{
    private readonly object _lock = new();
    private bool _started;
    private long _step, _totalSteps;
    private (string Path, long Step)? _checkpoint;

    /// <summary>What the run does before its first step ("loading the data", "waiting for workers", …).</summary>
    public string Phase { get; set; } = "loading the data";

    /// <summary>The run's --checkpoint-dir (null: none).</summary>
    public string? CheckpointDir { get; set; }

    public override void OnStart(string description, long startStep, long totalSteps)
    {
        lock (_lock) (_started, _step, _totalSteps) = (true, startStep, totalSteps);
    }

    public override void OnStep(in StepReport report)
    {
        long done = report.Outcome.Step + 1;
        lock (_lock) _step = done;
    }

    public override void OnCheckpoint(string path, long step)
    {
        lock (_lock) _checkpoint = (path, step);
    }

    /// <summary>The interrupted run's line, e.g. "interrupted by SIGTERM at step 37 of 120: checkpoint written to …".</summary>
    public string DescribeInterruption(string signal)
    {
        lock (_lock)
        {
            string head = $"interrupted by {signal}";
            if (!_started) return $"{head} while {Phase}: nothing to checkpoint before the first step";
            string at = $"{head} at step {_step} of {_totalSteps}";
            if (_checkpoint is { } written && written.Step == _step) return $"{at}: checkpoint written to {written.Path}; continue with --resume";
            if (_step == 0) return $"{at}: nothing to checkpoint before the first step";
            return CheckpointDir is { Length: > 0 } dir
                ? $"{at}: the newest checkpoint in {dir} already holds it; continue with --resume"
                : $"{at}: not checkpointed (no --checkpoint-dir)";
        }
    }
}

// How a training run ended, for a gradient source that has someone to tell before it is disposed (a cluster tells
// its workers, which then exit or wait for the next run).
namespace DistTrain.Core.Training;

public enum RunOutcome
{
    /// <summary>Every epoch trained (and the weights saved, where asked).</summary>
    Finished,
    /// <summary>An error ended the run.</summary>
    Failed,
    /// <summary>The run's cancellation token (Ctrl+C, SIGTERM) ended it.</summary>
    Interrupted,
}

/// <summary>A gradient source that must learn how the run ended; the run says so once, before disposing it.</summary>
public interface IRunEndListener
{
    /// <param name="outcome">How the run ended.</param>
    /// <param name="detail">The failure's message or the interruption's cause; empty when it finished.</param>
    void OnRunEnded(RunOutcome outcome, string detail);
}

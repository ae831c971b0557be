// Which coordinator run this worker serves, and whether that run has ended. The registration loop joins a run when it
// registers; the end comes only from that run's coordinator (its EndRun call, or the answer to a heartbeat) and names
// the run, so a coordinator that merely restarted (it says nothing) or a late notice from an earlier run (at the
// same address) cannot end the run the worker serves now.
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Worker;

public sealed class RunMembership
{
    private readonly object _lock = new();
    private string _run = "";
    private TaskCompletionSource<RunEnd> _ended = NewSignal();

    /// <summary>The coordinator_run of the registration this worker serves ("" before it first registers).</summary>
    public string Run
    {
        get { lock (_lock) return _run; }
    }

    /// <summary>Completes with the notice when the run joined last ends.</summary>
    public Task<RunEnd> Ended
    {
        get { lock (_lock) return _ended.Task; }
    }

    /// <summary>
    /// Serves coordinator run <paramref name="run"/>. Registering again with the same run (after a lost heartbeat)
    /// keeps its state, including an end already announced.
    /// </summary>
    public void Join(string run)
    {
        lock (_lock)
        {
            if (run == _run) return;
            _run = run;
            _ended = NewSignal();
        }
    }

    /// <summary>Serves no run: after an ended run, until the next coordinator registers this worker.</summary>
    public void Leave() => Join("");

    /// <summary>Records the end of <paramref name="run"/>; false (nothing recorded) when it is not the run served now.</summary>
    public bool End(string run, RunEnd end)
    {
        if (RunEndNotice.Problem(end) is { } problem) throw new ArgumentException(problem, nameof(end));
        lock (_lock)
        {
            if (run.Length == 0 || run != _run) return false;
            _ended.TrySetResult(end);
            return true;
        }
    }

    /// <summary>
    /// The EndRun call, validated at this edge: FailedPrecondition for another protocol version or another run than
    /// the one served (or none yet), InvalidArgument for a malformed notice.
    /// </summary>
    public EndRunReply Accept(EndRunRequest request)
    {
        Protocol.Check(request.ProtocolVersion, "EndRun");
        if (request.CoordinatorRun.Length is 0 or > RunEndNotice.MaxRunLength)
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"coordinator_run must have 1..{RunEndNotice.MaxRunLength} characters, found {request.CoordinatorRun.Length}"));
        if (RunEndNotice.Problem(request.End) is { } problem)
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"end: {problem}"));
        if (!End(request.CoordinatorRun, request.End))
        {
            string served = Run;
            throw new RpcException(new Status(StatusCode.FailedPrecondition, served.Length == 0
                ? "this worker serves no run (it is not registered)"
                : "this worker serves another coordinator run; the notice is stale"));
        }
        return new EndRunReply { ProtocolVersion = Protocol.Version };
    }

    private static TaskCompletionSource<RunEnd> NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

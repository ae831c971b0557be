// The end of this coordinator's run, told to its remote workers so that they exit (or, with --serve-forever, wait for
// the next coordinator) instead of retrying a coordinator that is gone. Told two ways: an EndRun call to every worker
// the registry knows, so they learn at once rather than at their next heartbeat; and the same notice in the answer to
// the heartbeat of a worker that call did not reach (its callback path is down, it registered a moment ago), for which
// the coordinator lingers a bounded time. From the moment the run ends registrations are refused with Unavailable:
// a worker retries those, which is how a --serve-forever worker finds the next coordinator.
using System.Diagnostics;
using DistTrain.Protos;
using DistTrain.Protos.Security;
using Grpc.Core;
using Grpc.Net.Client;
using CoreOutcome = DistTrain.Core.Training.RunOutcome;

namespace DistTrain.Coordinator.Distributed;

public sealed class EndOfRun
{
    /// <summary>Time one EndRun call may take: the notice is tiny, a worker that needs longer is not reachable.</summary>
    public static readonly TimeSpan CallDeadline = TimeSpan.FromSeconds(2);

    private readonly object _lock = new();
    /// <summary>Workers not yet told that still heartbeat: the linger waits for them.</summary>
    private readonly HashSet<string> _untold = [];
    private readonly HashSet<string> _toldAtHeartbeat = [];
    private readonly TaskCompletionSource _allTold = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RunEnd? _notice;

    /// <summary>A worker the notice is for: its id, its callback address, and whether it still heartbeats.</summary>
    public sealed record Recipient(string Id, string Address, bool Heartbeating);

    private sealed record Call(Recipient Worker, string? Error);

    /// <summary>Sends <paramref name="request"/> to the worker at <paramref name="address"/> (throws when it cannot).</summary>
    public delegate Task Caller(string address, EndRunRequest request, CancellationToken cancellationToken);

    /// <summary>The notice once the run has ended; null while it goes on.</summary>
    public RunEnd? Notice
    {
        get { lock (_lock) return _notice; }
    }

    /// <summary>The wire notice for how the run ended.</summary>
    public static RunEnd NoticeOf(CoreOutcome outcome, string detail) => RunEndNotice.Create(outcome switch
    {
        CoreOutcome.Finished => RunOutcome.Finished,
        CoreOutcome.Interrupted => RunOutcome.Interrupted,
        _ => RunOutcome.Failed,
    }, detail);

    /// <summary>
    /// What to put in the heartbeat answer of <paramref name="workerId"/> (a worker of this run): null while the run
    /// goes on, else the notice — and the worker counts as told.
    /// </summary>
    public RunEnd? AnswerHeartbeat(string workerId)
    {
        lock (_lock)
        {
            if (_notice is null) return null;
            if (_untold.Remove(workerId))
            {
                _toldAtHeartbeat.Add(workerId);
                if (_untold.Count == 0) _allTold.TrySetResult();
            }
            return _notice;
        }
    }

    /// <summary>
    /// Ends the run with <paramref name="notice"/> and tells <paramref name="workers"/>: EndRun calls to all of them at
    /// once, then — for those not reached that still heartbeat — the heartbeat answer, waited for at most
    /// <paramref name="linger"/>. Returns one line for the log: who learnt it how, and who could not be told.
    /// </summary>
    public async Task<string> AnnounceAsync(RunEnd notice, string run, IReadOnlyList<Recipient> workers, Caller call,
        TimeSpan linger)
    {
        lock (_lock)
        {
            _notice ??= notice;
            notice = _notice;
            foreach (var w in workers.Where(w => w.Heartbeating)) _untold.Add(w.Id);
        }
        var request = new EndRunRequest { ProtocolVersion = Protocol.Version, CoordinatorRun = run, End = notice };
        var calls = workers.Select(async Task<Call> (w) =>
        {
            try
            {
                using var deadline = new CancellationTokenSource(CallDeadline);
                await call(w.Address, request, deadline.Token).ConfigureAwait(false);
                return new Call(w, null);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Best effort: whatever stops the call leaves the heartbeat answer, and the log says who was not told.
                return new Call(w, e is RpcException rpc ? $"{rpc.StatusCode}: {PeerText.Printable(rpc.Status.Detail)}" : e.Message);
            }
        }).ToList();
        var results = await Task.WhenAll(calls).ConfigureAwait(false);

        lock (_lock)
        {
            foreach (var told in results.Where(r => r.Error is null)) _untold.Remove(told.Worker.Id);
            if (_untold.Count == 0) _allTold.TrySetResult();
        }
        var clock = Stopwatch.StartNew();
        await Task.WhenAny(_allTold.Task, Task.Delay(linger)).ConfigureAwait(false);
        HashSet<string> atHeartbeat;
        bool waited;
        lock (_lock) (atHeartbeat, waited) = ([.. _toldAtHeartbeat], _untold.Count > 0);

        var parts = new List<string>();
        var called = results.Where(r => r.Error is null).Select(r => r.Worker.Id).ToList();
        if (called.Count > 0) parts.Add($"{string.Join(", ", called)} at once");
        var missed = results.Where(r => r.Error is not null).ToList();
        var byHeartbeat = missed.Where(m => atHeartbeat.Contains(m.Worker.Id)).Select(m => m.Worker.Id).ToList();
        if (byHeartbeat.Count > 0) parts.Add($"{string.Join(", ", byHeartbeat)} at a heartbeat");
        var notTold = missed.Where(m => !atHeartbeat.Contains(m.Worker.Id)).Select(m => $"{m.Worker.Id} ({m.Error})").ToList();
        if (notTold.Count > 0)
            parts.Add($"not told: {string.Join(", ", notTold)}" + (waited ? $", after waiting {clock.Elapsed.TotalSeconds:F1}s for heartbeats" : ""));
        return $"run {RunEndNotice.Describe(notice)}; told the workers: {(parts.Count > 0 ? string.Join("; ", parts) : "none registered")}";
    }

    /// <summary>EndRun over gRPC with the node's token and TLS settings and the worker's session secret.</summary>
    public static Caller OverGrpc(NodeSecurity security, WorkerSessions sessions) => async (address, request, cancellationToken) =>
    {
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = sessions.HandlerFor(address, security, new SocketsHttpHandler { ConnectTimeout = CallDeadline }),
            DisposeHttpClient = true, MaxReceiveMessageSize = 64 * 1024, MaxSendMessageSize = 64 * 1024,
        });
        var reply = await new Protos.Worker.WorkerClient(channel).EndRunAsync(request,
            deadline: DateTime.UtcNow + CallDeadline, cancellationToken: cancellationToken).ConfigureAwait(false);
        Protocol.Check(reply.ProtocolVersion, "EndRun reply");
    };
}

// The Coordinator gRPC service: workers register (address, cores) and heartbeat. A thin adapter over the
// WorkerRegistry (and EndOfRun once the run has ended); requests are validated here so a confused or hostile peer
// gets a status, never a crash.
using DistTrain.Protos;
using Grpc.Core;

namespace DistTrain.Coordinator.Distributed;

public sealed class CoordinatorService(WorkerRegistry registry, ClusterClock clock, ClusterLog log, EndOfRun? endOfRun = null)
    : Protos.Coordinator.CoordinatorBase
{
    public override Task<RegisterReply> Register(RegisterRequest request, ServerCallContext context)
    {
        if (request.ProtocolVersion != Protocol.Version)
            log.Write($"worker at {Printable(request.Address)} refused: it speaks protocol version {request.ProtocolVersion}, this coordinator {Protocol.Version}");
        Protocol.Check(request.ProtocolVersion, "Register");
        // Unavailable, which workers retry: a worker that comes now is for the next coordinator at this address.
        if (endOfRun?.Notice is not null)
            throw new RpcException(new Status(StatusCode.Unavailable, "this coordinator's run has ended; register with the next one"));
        if (request.Address.Length > 256 || !Uri.TryCreate(request.Address, UriKind.Absolute, out var uri) ||
            uri.Scheme is not ("http" or "https") || uri.AbsolutePath != "/")
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"address must be an http(s) URL like http://host:port, found '{Printable(request.Address)}'"));
        if (request.Cores is < 1 or > 4096)
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"cores must be 1..4096, found {request.Cores}"));
        var entry = registry.Register(request.Address, request.Cores, clock.Now);
        log.Write($"worker {entry.Id} registered from {entry.Address} with {entry.Cores} thread(s)");
        return Task.FromResult(new RegisterReply
        {
            ProtocolVersion = Protocol.Version, WorkerId = entry.Id, CoordinatorRun = registry.RunId,
            HeartbeatIntervalMs = (int)registry.HeartbeatInterval.TotalMilliseconds,
        });
    }

    public override Task<HeartbeatReply> Heartbeat(HeartbeatRequest request, ServerCallContext context)
    {
        Protocol.Check(request.ProtocolVersion, "Heartbeat");
        bool thisRun = request.CoordinatorRun == registry.RunId;
        return Task.FromResult(new HeartbeatReply
        {
            ProtocolVersion = Protocol.Version,
            Known = thisRun && registry.Heartbeat(request.WorkerId, clock.Now),
            RunEnd = thisRun ? endOfRun?.AnswerHeartbeat(request.WorkerId) : null,
        });
    }

    private static string Printable(string s) =>
        new string(s.Take(80).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}

/// <summary>Monotonic time for the registry (tests use their own).</summary>
public sealed class ClusterClock
{
    private readonly System.Diagnostics.Stopwatch _watch = System.Diagnostics.Stopwatch.StartNew();
    public TimeSpan Now => _watch.Elapsed;
}

/// <summary>Where cluster events are written (the coordinator's stderr).</summary>
public sealed class ClusterLog(Action<string> write)
{
    public void Write(string message) => write(message);
}

// The Coordinator gRPC service: workers register (address, cores) and heartbeat. An adapter over the control plane:
// it checks a request, posts it to the machine as an event and answers from the machine's answer command, so a
// confused or hostile peer gets a status, never a crash, and membership lives in one place. Once the run has ended,
// EndOfRun answers: new registrations are for the next coordinator, heartbeats carry the end-of-run notice.
// A worker's session secret reaches the machine only as its SHA-256 digest; the secret itself goes to WorkerSessions
// (the data plane) for the calls to that worker. An address naming this coordinator is refused here (InvalidArgument),
// so it never reaches the machine and never counts as a worker.
using System.Security.Cryptography;
using DistTrain.Coordinator.Control;
using DistTrain.Protos;
using DistTrain.Protos.Security;
using Grpc.Core;

namespace DistTrain.Coordinator.Distributed;

public sealed class CoordinatorService(ClusterDriver driver, ClusterLog log, EndOfRun? endOfRun = null, WorkerSessions? sessions = null,
    CoordinatorSelf? self = null, StepTransport? transport = null)
    : Protos.Coordinator.CoordinatorBase
{
    public override async Task<RegisterReply> Register(RegisterRequest request, ServerCallContext context)
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
        if (self?.Names(uri) == true)
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"address '{Printable(request.Address)}' is this coordinator's own; a worker registers its own address"));
        var secret = SessionSecret.From(request.SessionSecret.Span)
            ?? throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"session_secret must be {SessionSecret.Bytes} bytes, found {request.SessionSecret.Length}"));
        // Kept before the machine hears of the worker (its Prepare command may go out before this call returns), and
        // put back when the machine refuses the caller, so a refused registration cannot change whose secret the
        // address's calls carry. Clients already made keep the secret they were made with.
        var previous = sessions?.Of(request.Address);
        sessions?.Remember(request.Address, secret);
        var commands = await driver.AskAsync(new WorkerRegistering(request.Address, request.Cores, Digest(request.SessionSecret)));
        if (commands.OfType<RegistrationRefused>().SingleOrDefault() is { } refused)
        {
            sessions?.Restore(request.Address, previous);
            throw new RpcException(new Status(
                refused.Why == RegistrationRefusal.Full ? StatusCode.ResourceExhausted : StatusCode.AlreadyExists, refused.Reason));
        }
        var answer = commands.OfType<RegistrationAnswer>().Single();
        return new RegisterReply
        {
            ProtocolVersion = Protocol.Version, WorkerId = answer.WorkerId, CoordinatorRun = answer.CoordinatorRun,
            HeartbeatIntervalMs = (int)answer.HeartbeatInterval.TotalMilliseconds,
        };
    }

    /// <summary>
    /// The weights of a request in flight, for the worker holding its ticket (the data plane's, not the machine's: no
    /// event, no hop); with a next-step ticket, once that step's requests go out. A stale, used or unknown ticket gets
    /// FailedPrecondition, which fails that request like any other error (a worker fetching early falls back to its
    /// request's own ticket).
    /// </summary>
    public override async Task<FetchWeightsReply> FetchWeights(FetchWeightsRequest request, ServerCallContext context)
    {
        Protocol.Check(request.ProtocolVersion, "FetchWeights");
        var weights = (transport is null ? null : await transport.WeightsForAsync(request.Step, request.Ticket.Memory, context.CancellationToken))
            ?? throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"no request of step {request.Step} holds that ticket (the step ended or did not come to this worker, or the ticket is wrong or used)"));
        return new FetchWeightsReply { ProtocolVersion = Protocol.Version, Step = request.Step, Weights = weights };
    }

    public override async Task<HeartbeatReply> Heartbeat(HeartbeatRequest request, ServerCallContext context)
    {
        Protocol.Check(request.ProtocolVersion, "Heartbeat");
        var answer = (await driver.AskAsync(new HeartbeatReceived(request.WorkerId, request.CoordinatorRun, Digest(request.SessionSecret)))).OfType<HeartbeatAnswer>().Single();
        bool thisRun = request.CoordinatorRun == driver.RunId;
        return new HeartbeatReply
        {
            ProtocolVersion = Protocol.Version, Known = answer.Known,
            RunEnd = thisRun ? endOfRun?.AnswerHeartbeat(request.WorkerId) : null,
        };
    }

    /// <summary>The machine keeps a digest, never the secret itself (it shows up in no view, log or dump).</summary>
    private static byte[]? Digest(Google.Protobuf.ByteString secret) => secret.IsEmpty ? null : SHA256.HashData(secret.Span);

    private static string Printable(string s) => PeerText.Printable(s, maxLength: 80);
}

/// <summary>Monotonic time for the control plane (tests drive the machine with their own).</summary>
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

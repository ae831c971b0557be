// Keeps this worker known to the coordinator: registers with the address Kestrel actually bound, then heartbeats
// at the interval the coordinator asked for, registering again if the coordinator forgot it (restart, timeout).
// Transport failures of any kind (Unavailable, DeadlineExceeded, Internal or Unknown from a connection torn down
// mid-call, Cancelled by a dying server) are retried, and so is AlreadyExists (an earlier life of this address is
// still live there until the coordinator finds it lost); only a refusal (wrong protocol version, bad token, bad
// request) stops the worker with the coordinator's reason.
// --register-timeout bounds only the first registration: once registered, a coordinator that went away (crash,
// restart with --resume) is waited for indefinitely, with backoff and a log line every few seconds.
// Only the coordinator's notice that its run ended (RunMembership) ends the worker's part: it stops with exit code 0,
// or with --serve-forever forgets the run and registers with the next coordinator at the same URL.
using DistTrain.Protos;
using DistTrain.Protos.Security;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace DistTrain.Worker;

public sealed class RegistrationService(
    WorkerOptions options, WorkerSession session, RunMembership membership, IServer server, IHostApplicationLifetime lifetime,
    NodeSecurity security, CoordinatorCredential credential, ILogger<RegistrationService> log) : BackgroundService
{
    private static readonly TimeSpan CallDeadline = TimeSpan.FromSeconds(5);
    // This process's proof that it is the worker registered at its address (registrations and heartbeats carry it).
    private Google.Protobuf.ByteString SessionSecret => Google.Protobuf.ByteString.CopyFrom(credential.Secret.Value);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await WaitForStartAsync(stoppingToken)) return;
        string address = AdvertisedAddress();
        using var channel = GrpcChannel.ForAddress(options.Coordinator, new GrpcChannelOptions
        {
            HttpHandler = security.CreateClientHandler(), DisposeHttpClient = true,
            MaxReceiveMessageSize = 64 * 1024, MaxSendMessageSize = 64 * 1024,
        });
        var client = new Protos.Coordinator.CoordinatorClient(channel);
        try
        {
            bool registered = false;
            while (!stoppingToken.IsCancellationRequested)
            {
                var ended = membership.Ended;
                var registration = await RegisterAsync(client, address, giveUp: !registered, ended, stoppingToken);
                if (registration is not null)
                {
                    registered = true;
                    session.WorkerId = registration.WorkerId;
                    membership.Join(registration.CoordinatorRun);
                    ended = membership.Ended;
                    log.LogInformation("registered with {Coordinator} as {Id} ({Address}, {Cores} threads)",
                        options.Coordinator, registration.WorkerId, address, session.Cores);
                    var interval = TimeSpan.FromMilliseconds(Math.Clamp(registration.HeartbeatIntervalMs, 100, 60_000));
                    try
                    {
                        await HeartbeatUntilForgottenAsync(client, registration.WorkerId, registration.CoordinatorRun, interval, ended, stoppingToken);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // Whatever went wrong with this registration, the worker stays up and registers again.
                        log.LogWarning("heartbeat loop failed ({Error}); registering again", e.Message);
                    }
                }
                else if (!ended.IsCompleted) return; // stopping, or refused (the exit code is set)
                if (ended.IsCompleted && !ContinueAfter(await ended)) return;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }

    /// <summary>
    /// The run ended: exit 0 (false), or with --serve-forever forget it and go on to the next coordinator (true).
    /// </summary>
    private bool ContinueAfter(RunEnd end)
    {
        string run = membership.Run;
        if (!options.ServeForever)
        {
            log.LogInformation("the coordinator's run {Run} {Outcome}; this worker's part is done, exiting",
                run, RunEndNotice.Describe(end));
            Environment.ExitCode = 0;
            lifetime.StopApplication();
            return false;
        }
        log.LogInformation("the coordinator's run {Run} {Outcome}; --serve-forever: waiting for the next coordinator at {Coordinator}",
            run, RunEndNotice.Describe(end), options.Coordinator);
        membership.Leave();
        return true;
    }

    /// <summary>
    /// Registers, retrying transport failures; null when stopping, refused (exit code 1 set), or when
    /// <paramref name="ended"/> completes first (the run ended while the worker was registering again).
    /// </summary>
    private async Task<RegisterReply?> RegisterAsync(Protos.Coordinator.CoordinatorClient client, string address,
        bool giveUp, Task ended, CancellationToken stoppingToken)
    {
        var started = DateTime.UtcNow;
        var deadline = giveUp ? started.AddSeconds(options.RegisterTimeoutSeconds) : DateTime.MaxValue;
        var nextNotice = started.AddSeconds(5);
        var delay = TimeSpan.FromMilliseconds(200);
        while (true)
        {
            try
            {
                credential.Offered();
                var reply = await client.RegisterAsync(
                    new RegisterRequest
                    {
                        ProtocolVersion = Protocol.Version, Address = address, Cores = session.Cores,
                        SessionSecret = Google.Protobuf.ByteString.CopyFrom(credential.Secret.Value),
                    },
                    deadline: DateTime.UtcNow + CallDeadline, cancellationToken: stoppingToken);
                Protocol.Check(reply.ProtocolVersion, "Register reply");
                return reply;
            }
            catch (RpcException) when (stoppingToken.IsCancellationRequested)
            {
                return null;
            }
            catch (RpcException e) when (!IsRefusal(e.StatusCode) && DateTime.UtcNow < deadline)
            {
                log.LogDebug("coordinator not reachable yet ({Status}: {Detail}); retrying", e.StatusCode, e.Status.Detail);
                if (DateTime.UtcNow >= nextNotice)
                {
                    log.LogInformation("coordinator {Coordinator} unreachable for {Seconds:F0}s; still retrying{Limit}", options.Coordinator,
                        (DateTime.UtcNow - started).TotalSeconds, giveUp ? $" (giving up after {options.RegisterTimeoutSeconds}s)" : "");
                    nextNotice = DateTime.UtcNow.AddSeconds(10);
                }
            }
            catch (RpcException e)
            {
                if (IsRefusal(e.StatusCode))
                    log.LogError("the coordinator at {Coordinator} refused this worker: {Status} {Detail}",
                        options.Coordinator, e.StatusCode, e.Status.Detail);
                else
                    log.LogError("the coordinator at {Coordinator} stayed unreachable for {Seconds}s (--register-timeout): {Status} {Detail}",
                        options.Coordinator, options.RegisterTimeoutSeconds, e.StatusCode, e.Status.Detail);
                Environment.ExitCode = 1;
                lifetime.StopApplication();
                return null;
            }
            if (await Task.WhenAny(Task.Delay(delay, stoppingToken), ended) == ended) return null;
            stoppingToken.ThrowIfCancellationRequested();
            delay = TimeSpan.FromMilliseconds(Math.Min(2000, delay.TotalMilliseconds * 2));
        }
    }

    /// <summary>Heartbeats until the coordinator forgets this worker, a heartbeat fails, or the run ends.</summary>
    private async Task HeartbeatUntilForgottenAsync(Protos.Coordinator.CoordinatorClient client, string id, string run,
        TimeSpan interval, Task ended, CancellationToken stoppingToken)
    {
        while (true)
        {
            if (await Task.WhenAny(Task.Delay(interval, stoppingToken), ended) == ended) return;
            stoppingToken.ThrowIfCancellationRequested();
            try
            {
                var reply = await client.HeartbeatAsync(new HeartbeatRequest { ProtocolVersion = Protocol.Version, WorkerId = id, CoordinatorRun = run, SessionSecret = SessionSecret },
                    deadline: DateTime.UtcNow + CallDeadline, cancellationToken: stoppingToken);
                Protocol.Check(reply.ProtocolVersion, "Heartbeat reply");
                if (reply.RunEnd is { } end)
                {
                    // The notice for a worker the coordinator's EndRun call did not reach.
                    if (RunEndNotice.Problem(end) is { } problem)
                        log.LogWarning("ignoring a malformed end-of-run notice in a heartbeat answer: {Problem}", problem);
                    else if (membership.End(run, end)) return;
                }
                if (!reply.Known)
                {
                    log.LogInformation("the coordinator no longer knows {Id}; registering again", id);
                    return;
                }
            }
            catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
            {
                // A coordinator that went away (or came back with other settings) will forget us; registering again
                // covers every case, and a real refusal is reported there.
                log.LogInformation("heartbeat failed ({Status}); registering again", e.StatusCode);
                return;
            }
        }
    }

    /// <summary>A coordinator's answer that retrying cannot change; everything else is a transport failure.</summary>
    internal static bool IsRefusal(StatusCode code) => code is StatusCode.InvalidArgument or StatusCode.FailedPrecondition
        or StatusCode.PermissionDenied or StatusCode.Unauthenticated or StatusCode.Unimplemented or StatusCode.OutOfRange
        or StatusCode.NotFound;

    private async Task<bool> WaitForStartAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource();
        using var registration = lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        using var stopping = stoppingToken.Register(() => started.TrySetCanceled());
        try { await started.Task; return true; }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>The bound address (port 0 resolves to the real port) with a host the coordinator can reach.</summary>
    private string AdvertisedAddress()
    {
        var bound = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("the server reports no bound address");
        return Worker.AdvertisedAddress.Resolve(options, bound);
    }
}

// A stand-in coordinator in the test process, behind the shared token like a real one: it registers workers and keeps
// the session secret each sent, so a test can call a worker exactly as its coordinator would (or leave the secret out).
using DistTrain.Protos;
using DistTrain.Protos.Security;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;

namespace DistTrain.Tests.Security;

public sealed class RecordingCoordinator : Protos.Coordinator.CoordinatorBase, IAsyncDisposable
{
    private readonly TaskCompletionSource<string> _secret = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebApplication? _app;

    public string Url { get; private set; } = "";

    /// <summary>The x-disttrain-session value of the first worker that registered.</summary>
    public Task<string> SecretAsync(TimeSpan timeout) => _secret.Task.WaitAsync(timeout);

    public static async Task<RecordingCoordinator> StartAsync(string token)
    {
        var coordinator = new RecordingCoordinator();
        (coordinator._app, coordinator.Url) = await Infrastructure.LoopbackGrpcServer.StartAsync(coordinator,
            app => new NodeSecurity(SharedToken.Parse(token, "test"), null).Protect(app, _ => { }));
        return coordinator;
    }

    public override Task<RegisterReply> Register(RegisterRequest request, ServerCallContext context)
    {
        if (SessionSecret.From(request.SessionSecret.Span) is { } secret) _secret.TrySetResult(secret.HeaderValue);
        return Task.FromResult(new RegisterReply
        {
            ProtocolVersion = Protocol.Version, WorkerId = "w1", HeartbeatIntervalMs = 500, CoordinatorRun = "fedcba9876543210",
        });
    }

    public override Task<HeartbeatReply> Heartbeat(HeartbeatRequest request, ServerCallContext context) =>
        Task.FromResult(new HeartbeatReply { ProtocolVersion = Protocol.Version, Known = true });

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}

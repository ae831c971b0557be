// A worker process against a scripted coordinator that fails calls the way a crashing or restarting coordinator does
// (Internal, Unknown, Cancelled from a connection torn down mid-call): the worker keeps retrying and registers again
// instead of exiting, while a refusal (FailedPrecondition) still stops it with exit code 1 and the reason.
using System.Collections.Concurrent;
using DistTrain.Protos;
using DistTrain.Tests.Distributed;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;

namespace DistTrain.Tests.Fault;

public sealed class WorkerReconnectTests : IDisposable
{
    private readonly ProcessHarness _processes = new();

    /// <summary>Answers each call with the next scripted failure, then succeeds; records every call.</summary>
    private sealed class ScriptedCoordinator : Protos.Coordinator.CoordinatorBase
    {
        public readonly ConcurrentQueue<StatusCode> RegisterFailures = new(), HeartbeatFailures = new();
        public readonly ConcurrentQueue<string> Calls = new();
        private int _registrations;

        public override Task<RegisterReply> Register(RegisterRequest request, ServerCallContext context)
        {
            if (RegisterFailures.TryDequeue(out var failure))
            {
                Calls.Enqueue($"register:{failure}");
                throw new RpcException(new Status(failure, "scripted failure"));
            }
            string id = $"w{Interlocked.Increment(ref _registrations)}";
            Calls.Enqueue($"register:{id}");
            return Task.FromResult(new RegisterReply { ProtocolVersion = Protocol.Version, WorkerId = id, HeartbeatIntervalMs = 100 });
        }

        public override Task<HeartbeatReply> Heartbeat(HeartbeatRequest request, ServerCallContext context)
        {
            if (HeartbeatFailures.TryDequeue(out var failure))
            {
                Calls.Enqueue($"heartbeat:{request.WorkerId}:{failure}");
                throw new RpcException(new Status(failure, "scripted failure"));
            }
            Calls.Enqueue($"heartbeat:{request.WorkerId}:ok");
            return Task.FromResult(new HeartbeatReply { ProtocolVersion = Protocol.Version, Known = true });
        }
    }

    private static async Task<(WebApplication App, int Port)> HostAsync(ScriptedCoordinator coordinator)
    {
        var (app, url) = await Infrastructure.LoopbackGrpcServer.StartAsync(coordinator);
        return (app, new Uri(url).Port);
    }

    [Fact]
    public async Task TransportFailuresOfEveryKindAreRetriedAndTheWorkerRegistersAgain()
    {
        var coordinator = new ScriptedCoordinator();
        foreach (var code in new[] { StatusCode.Internal, StatusCode.Unknown, StatusCode.Cancelled, StatusCode.ResourceExhausted })
            coordinator.RegisterFailures.Enqueue(code);
        foreach (var code in new[] { StatusCode.Internal, StatusCode.Cancelled, StatusCode.Unknown })
            coordinator.HeartbeatFailures.Enqueue(code);
        var (app, port) = await HostAsync(coordinator);
        await using var _ = app;

        var worker = _processes.Start(ProcessHarness.WorkerDll, "--coordinator", $"http://127.0.0.1:{port}", "--threads", "1",
            "--port", "0", "--register-timeout", "60");
        // Four failed registrations, then w1; each failed heartbeat makes the worker register again (w2, w3, w4).
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!coordinator.Calls.Contains("heartbeat:w4:ok"))
        {
            if (worker.Process.HasExited)
                Assert.Fail($"the worker exited ({worker.Process.ExitCode}):\n{ProcessHarness.Text(worker.Output)}");
            Assert.True(DateTime.UtcNow < until, $"no heartbeat from w4 within 60 s; calls: {string.Join(", ", coordinator.Calls)}");
            await Task.Delay(20);
        }
        var registrations = coordinator.Calls.Where(c => c.StartsWith("register:", StringComparison.Ordinal)).ToList();
        Assert.Equal(["register:Internal", "register:Unknown", "register:Cancelled", "register:ResourceExhausted",
            "register:w1", "register:w2", "register:w3", "register:w4"], registrations);
    }

    [Fact]
    public async Task ARefusalStillStopsTheWorkerWithItsReason()
    {
        var coordinator = new ScriptedCoordinator();
        coordinator.RegisterFailures.Enqueue(StatusCode.FailedPrecondition);
        var (app, port) = await HostAsync(coordinator);
        await using var _ = app;

        var worker = _processes.Start(ProcessHarness.WorkerDll, "--coordinator", $"http://127.0.0.1:{port}", "--threads", "1",
            "--port", "0", "--register-timeout", "60");
        var (code, output) = ProcessHarness.Wait(worker, TimeSpan.FromSeconds(60));
        Assert.True(code == 1, output);
        Assert.Contains("refused this worker: FailedPrecondition scripted failure", output);
        Assert.Equal(["register:FailedPrecondition"], coordinator.Calls);
    }

    public void Dispose() => _processes.Dispose();
}

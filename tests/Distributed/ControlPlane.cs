// The control plane in one process for data-plane tests: the real machine and driver over a real StepTransport, with
// worker connections the test supplies (fake clients in front of real WorkerSessions) and no preparer — the test
// registers a worker, hands over its connection and reports it prepared, as the preparer would.
using System.Diagnostics;
using DistTrain.Coordinator.Control;
using DistTrain.Coordinator.Distributed;
using DistTrain.Protos;

namespace DistTrain.Tests.Distributed;

public sealed class ControlPlane
{
    public const string RunId = "test-run";

    private sealed class NoPreparation : IWorkerPreparation
    {
        public void Prepare(PrepareWorker command) { }
        public void Disconnect(DisconnectWorker command) { }
    }

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<string> _log = [];

    public ControlPlane(int parameterCount, IBulkPlane? bulk, ControlOptions? options = null,
        WeightsTransfer weightsTransfer = WeightsTransfer.Push)
    {
        ClusterDriver? driver = null;
        Source = new StepTransport(parameterCount, Connections, bulk, e => driver!.Post(e), weightsTransfer);
        driver = new ClusterDriver(new ClusterStateMachine(options ?? new ControlOptions { SweepInterval = TimeSpan.Zero }, RunId),
            () => _clock.Elapsed, Source, new NoPreparation(), Write);
        Driver = driver;
    }

    public ClusterDriver Driver { get; }
    public StepTransport Source { get; }
    public WorkerConnections Connections { get; } = new();

    /// <summary>What the control plane logged so far.</summary>
    public List<string> Log
    {
        get { lock (_log) return [.. _log]; }
    }

    public async Task<RegistrationAnswer> RegisterAsync(string address, int cores = 1) =>
        (await Driver.AskAsync(new WorkerRegistering(address, cores))).OfType<RegistrationAnswer>().Single();

    /// <summary>The worker prepared: its connection is handed over and the machine told.</summary>
    public void Ready(RegistrationAnswer worker, IWorkerClient client, IGradientSlots? slots = null)
    {
        Connections.Add(new WorkerConnection(worker.WorkerId, worker.Generation, client, slots));
        Driver.Post(new WorkerPrepared(worker.WorkerId, worker.Generation, slots is not null, "in-process"));
    }

    /// <summary>The worker's row of a freshly published view.</summary>
    public WorkerView Worker(string id)
    {
        Driver.Tick();
        return Driver.View.Workers.Single(w => w.Id == id);
    }

    private void Write(string line)
    {
        lock (_log) _log.Add(line);
    }
}

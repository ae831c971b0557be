// A scripted scenario on the control plane's state machine, in the manner of etcd-io/raft's interaction tests: a fake
// clock, events in, and the exact commands out as text. No threads, no network, no real time — a scenario replays
// exactly and runs in milliseconds.
using DistTrain.Coordinator.Control;
using DistTrain.Core.Training;

namespace DistTrain.Tests.Control;

public sealed class ClusterScenario
{
    private readonly List<ClusterCommand> _out = [];
    private readonly Dictionary<string, byte[]> _sessions = [];

    public ClusterScenario(ControlOptions? options = null, string run = "run-a") =>
        Machine = new ClusterStateMachine(options ?? Options(), run);

    /// <summary>Defaults for scenarios: every tick sweeps; 3 s heartbeat timeout; 30 s compute timeout.</summary>
    public static ControlOptions Options(int expect = 1) => new()
    {
        ExpectWorkers = expect, MinWorkers = expect, SweepInterval = TimeSpan.Zero,
        HeartbeatTimeout = TimeSpan.FromSeconds(3), ComputeTimeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>Batches of 8 samples in shards of 2: four shards a step.</summary>
    public static readonly ShardPlan Plan = new(8, 2);

    public ClusterStateMachine Machine { get; }
    public TimeSpan Now { get; private set; }

    /// <summary>The commands since the last Expect or Skip, typed.</summary>
    public IReadOnlyList<ClusterCommand> Commands => _out;

    public ClusterScenario At(double seconds)
    {
        Now = TimeSpan.FromSeconds(seconds);
        _out.AddRange(Machine.Tick(Now));
        return this;
    }

    public ClusterScenario Step(ClusterEvent input)
    {
        _out.AddRange(Machine.Step(input));
        return this;
    }

    /// <summary>The commands since the last Expect or Skip must be exactly these lines, in order.</summary>
    public void Expect(params string[] lines)
    {
        Assert.Equal(lines, _out.Select(c => c.ToString()!).ToArray());
        _out.Clear();
    }

    public void Skip() => _out.Clear();

    public static string Address(int n) => $"http://10.0.0.{n}:5000/";

    /// <summary>The session digest of the worker process at address <paramref name="n"/> (life <paramref name="life"/>).</summary>
    public static byte[] Session(int n, int life = 1) => [.. System.Text.Encoding.ASCII.GetBytes($"session {n}.{life}")];

    /// <summary>The worker process at address <paramref name="n"/> registers (again, when it is the same life).</summary>
    public ClusterScenario Register(int n, int life = 1)
    {
        int before = _out.Count;
        Step(new WorkerRegistering(Address(n), 1, Session(n, life)));
        if (_out.Skip(before).OfType<RegistrationAnswer>().SingleOrDefault() is { } answer) _sessions[answer.WorkerId] = Session(n, life);
        return this;
    }

    /// <summary>Registers and prepares a worker at address <paramref name="n"/>; returns its id; leaves the commands.</summary>
    public string Join(int n, bool sameHost = false)
    {
        Register(n);
        var answer = _out.OfType<RegistrationAnswer>().Last();
        Step(new WorkerPrepared(answer.WorkerId, answer.Generation, sameHost, "test"));
        return answer.WorkerId;
    }

    /// <summary>A heartbeat of the worker with the session of its latest registration here.</summary>
    public ClusterScenario Heartbeat(string worker, string run = "run-a") =>
        Step(new HeartbeatReceived(worker, run, _sessions.GetValueOrDefault(worker)));

    public ClusterScenario Reply(long step, int attempt, int dispatch, params BlockVerdict[] verdicts) =>
        Step(new ReplyReceived(step, attempt, dispatch, verdicts));

    public ClusterScenario Fail(long step, int attempt, int dispatch, string reason = "Unavailable: connection refused") =>
        Step(new RequestFailed(step, attempt, dispatch, reason));

    public ClusterScenario Request(long step) => Step(new StepRequested(step, Plan));

    /// <summary>
    /// Runs step <paramref name="step"/> to its end: each request is answered valid after its worker's latency (in
    /// seconds from the step's start; null: never), ticking the clock from reply to reply. Leaves the commands.
    /// </summary>
    public void RunStep(long step, Func<string, double?> latency)
    {
        double start = Now.TotalSeconds;
        Request(step);
        var pending = _out.OfType<SendRequest>().Where(s => s.Step == step).ToList();
        var answered = new HashSet<int>();
        while (pending.FirstOrDefault(s => !answered.Contains(s.Dispatch) && latency(s.WorkerId) is not null) is not null)
        {
            var next = pending.Where(s => !answered.Contains(s.Dispatch) && latency(s.WorkerId) is not null)
                .OrderBy(s => latency(s.WorkerId)).ThenBy(s => s.Dispatch).First();
            answered.Add(next.Dispatch);
            At(Math.Max(Now.TotalSeconds, start + latency(next.WorkerId)!.Value));
            int before = _out.Count;
            Reply(next.Step, next.Attempt, next.Dispatch, [.. next.Blocks.Select(_ => BlockVerdict.Valid)]);
            pending.AddRange(_out.Skip(before).OfType<SendRequest>());
        }
    }

    public WorkerView Worker(string id) => Machine.View().Workers.Single(w => w.Id == id);
}

/// <summary>
/// The machine run once before the scenarios, so that each scenario's time is its own: the first one would otherwise
/// include compiling the machine and StepAssignment (about 0.2 s here), where the replays themselves take milliseconds.
/// </summary>
public sealed class CompiledMachine
{
    public CompiledMachine()
    {
        var s = new ClusterScenario(ClusterScenario.Options(expect: 2) with { WaitForWorkers = TimeSpan.FromSeconds(5) });
        s.Join(1);
        s.Join(2);
        s.Step(new TrainingRequested());
        for (int step = 0; step < 12; step++) s.RunStep(step, w => w == "w2" ? 0.03 : 0.01);
        s.Request(12).Fail(12, 1, 0).Reply(12, 1, 1, BlockVerdict.NonFinite).At(s.Now.TotalSeconds + 4);
        s.Heartbeat("w2").Register(1);
        _ = s.Machine.View();
        var pool = new ClusterScenario(ClusterScenario.Options(expect: 2));
        pool.Join(1, sameHost: true);
        pool.Join(2, sameHost: true);
        pool.Request(0).Reply(0, 1, 0, BlockVerdict.Valid, BlockVerdict.Elsewhere, BlockVerdict.Valid, BlockVerdict.Invalid);
    }
}

[CollectionDefinition(Name)]
public sealed class ControlScenarios : ICollectionFixture<CompiledMachine>
{
    public const string Name = "control scenarios";
}

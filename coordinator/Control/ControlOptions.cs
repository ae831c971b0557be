// The control plane's settings: the start-up wait (--expect-workers, --min-workers, --wait-seconds), the wait for
// workers mid-run (--wait-for-workers), deadlines (--compute-timeout), heartbeats (--heartbeat-timeout), the attempt
// limit, the health rules' window and factors, how far workers' reports are believed, and the registry's bounds
// (--max-workers, --forget-after). Built from ClusterOptions; tests set what they exercise.
namespace DistTrain.Coordinator.Control;

public sealed record ControlOptions
{
    /// <summary>Workers to wait for before training.</summary>
    public int ExpectWorkers { get; init; } = 1;
    /// <summary>Ready workers enough to start once every expected one has answered or the start-up wait ran out.</summary>
    public int MinWorkers { get; init; } = 1;
    /// <summary>How long the start-up wait lasts (--wait-seconds).</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>How long a step with no ready worker waits for one (--wait-for-workers; zero: the run fails at once).</summary>
    public TimeSpan WaitForWorkers { get; init; } = TimeSpan.Zero;
    /// <summary>How often that wait says so in the log.</summary>
    public TimeSpan WaitNoticeInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>A request unanswered this long fails and its worker is lost (--compute-timeout).</summary>
    public TimeSpan ComputeTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>How often workers heartbeat (told to them when they register).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Heartbeat silence after which a worker is lost (--heartbeat-timeout): the one definition of lost.</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// Workers the registry holds at most (--max-workers): a new address beyond it takes the place of the longest-silent
    /// lost or refused one, or is refused while every place is live, so a flood of registrations cannot grow it.
    /// </summary>
    public int MaxWorkers { get; init; } = 256;
    /// <summary>A lost or refused worker silent this long is forgotten (--forget-after); back later, it gets a new id.</summary>
    public TimeSpan ForgetAfter { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Attempts of one step (each restart needs a worker lost and another ready) before it is given up.</summary>
    public int MaxAttempts { get; init; } = 100;
    /// <summary>How often Tick looks at heartbeats, deadlines, waits and health (zero: at every tick).</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>
    /// Weight of the newest measurement in the throughput average: a half-life of about 2.4 steps. At 0.5, the
    /// step-to-step noise of two equal workers on a shared machine flipped 8 shards between 4:4 and 5:3 splits
    /// (received bytes per step 464 KiB instead of 397.6); at 0.25 nearly every step is split evenly.
    /// </summary>
    public double ThroughputSmoothing { get; init; } = 0.25;
    /// <summary>Recent requests (per worker) and steps the health rules look at.</summary>
    public int HealthWindow { get; init; } = 8;
    /// <summary>Slower than this multiple of the peers' median latency is a straggler; silent this multiple of the median step time is hung.</summary>
    public double HealthFactor { get; init; } = 2;
    /// <summary>Below this median latency nobody is a straggler: millisecond jitter is not a health problem.</summary>
    public TimeSpan StragglerMinimum { get; init; } = TimeSpan.FromMilliseconds(20);
    /// <summary>
    /// How much faster than the coordinator measured it a worker may count by reporting that it waited for a core
    /// (see MeasuredSpeed). 8: a same-host worker sharing its cores with seven times as many busy threads.
    /// </summary>
    public double CpuCreditLimit { get; init; } = 8;
    /// <summary>A worker with blocks rejected in this many consecutive steps it took part in is refused: a broken worker
    /// would otherwise cost every step a recomputation.</summary>
    public int RejectedStepsLimit { get; init; } = 3;
    /// <summary>
    /// A block whose gradient norm per shard exceeds this multiple of the step's median is logged (0: off,
    /// --gradient-outlier-factor). Logged, not rejected: a rare hard example is genuine.
    /// </summary>
    public double GradientOutlierFactor { get; init; }
    /// <summary>Unanswered for less than this is never a hang, however short the steps: a scheduling hiccup is not one.</summary>
    public TimeSpan HungMinimum { get; init; } = TimeSpan.FromMilliseconds(500);
}

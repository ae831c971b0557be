// The coordinator's control plane as one deterministic state machine, in the manner of etcd's raft: input by
// Step(event) and Tick(now), output by a list of commands; no I/O, no clock, no locks, no threads. It owns membership
// (one immutable record per worker life), the start-up wait, each step's attempts with a StepAssignment inside,
// deadlines, heartbeat expiry, the wait for workers mid-run, the run's end, and the naming of stragglers and hangs.
// ClusterDriver feeds it and executes its commands; every fault scenario is a unit test that replays exactly.
// This file: events in, membership, the start-up wait, ticks and the view; ClusterStateMachine.Registration.cs: who
// may register and heartbeat, and the registry's bounds; ClusterStateMachine.Steps.cs: the steps.
using System.Globalization;

namespace DistTrain.Coordinator.Control;

public sealed partial class ClusterStateMachine
{
    private readonly ControlOptions _options;
    private readonly Membership _members;
    private readonly List<ClusterCommand> _out = [];
    private readonly Queue<double> _stepSeconds = new();
    private StepRun? _step;
    private TimeSpan _now, _nextSweep;
    private TimeSpan? _startupSince;
    private long _currentStep = -1;
    private string _runReason = "";

    /// <param name="runId">Names this coordinator run: ids restart at w1 after a restart, so a worker still heartbeating
    /// with an id an earlier run gave it must not pass for the worker that now holds that id.</param>
    public ClusterStateMachine(ControlOptions options, string runId)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(runId);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.HealthWindow, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxAttempts, 1);
        _options = options;
        _members = new Membership(options);
        RunId = runId;
    }

    public string RunId { get; }
    public ControlOptions Options => _options;
    public RunState Run { get; private set; } = RunState.Starting;
    /// <summary>The latest time a Tick brought.</summary>
    public TimeSpan Now => _now;
    /// <summary>Moves whenever the view would show something new (membership, the run's state, each sweep).</summary>
    public long Version { get; private set; }

    public IReadOnlyList<ClusterCommand> Step(ClusterEvent input)
    {
        switch (input)
        {
            case WorkerRegistering e: Register(e); break;
            case HeartbeatReceived e: Heartbeat(e); break;
            case WorkerPrepared e: Prepared(e); break;
            case WorkerRefused e: Refused(e); break;
            case WorkerUnreachable e: Unreachable(e); break;
            case TrainingRequested: BeginStartupWait(); break;
            case StepRequested e: BeginStep(e); break;
            case ReplyReceived e: Answered(e); break;
            case RequestFailed e: Failed(e); break;
            case StepAbandoned e: Abandon(e); break;
            case RunEnded e: EndRun(e); break;
            default: throw new ArgumentException($"unknown event {input.GetType().Name}", nameof(input));
        }
        return Flush();
    }

    /// <summary>Time passes: heartbeats expire, deadlines run out, waits end or say so, health is judged (each SweepInterval).</summary>
    public IReadOnlyList<ClusterCommand> Tick(TimeSpan now)
    {
        if (now > _now) _now = now;
        if (_now >= _nextSweep)
        {
            _nextSweep = _now + _options.SweepInterval;
            Sweep();
        }
        return Flush();
    }

    private void Sweep()
    {
        Version++;
        foreach (var record in _members.All.Where(r => r.Live && _now - r.LastSeen > _options.HeartbeatTimeout).ToList())
            Advance(Lose(record, $"no heartbeat for {Seconds(_now - record.LastSeen, "F1")}s", announce: true));
        ForgetLongGone();
        ExpireDeadlines();
        CheckStartup();
        CheckWait();
        JudgeHealth();
    }

    private void Prepared(WorkerPrepared e)
    {
        if (_members.Current(e.WorkerId, e.Generation) is not { State: WorkerState.Preparing or WorkerState.Rejoining } record)
        {
            // Prepared too late: that life was lost or replaced meanwhile.
            Emit(new DisconnectWorker(e.WorkerId, e.Generation));
            return;
        }
        bool waiting = _step?.WaitingSince is not null;
        _members.Set(record with { State = WorkerState.Ready, Reason = "", SameHost = e.SameHost, ReadyDuringStep = _currentStep });
        Version++;
        string when = _currentStep < 0 ? ""
            : waiting ? $" during step {_currentStep} (which waits for workers: it gets work in it)"
            : $" during step {_currentStep} (gets work from step {_currentStep + 1})";
        Emit(new LogLine($"worker {record.Id} ({record.Address}, {record.Cores} thread(s)) " +
            $"{(record.Rejoins > 0 ? "rejoined and is " : "")}ready{when}; {e.Detail}"));
        CheckStartup();
        if (waiting) EndWait();
    }

    private void Refused(WorkerRefused e)
    {
        if (_members.Current(e.WorkerId, e.Generation) is { State: WorkerState.Preparing or WorkerState.Rejoining } record)
        {
            _members.Set(record with { State = WorkerState.Refused, Reason = e.Reason });
            Version++;
            Emit(new LogLine($"worker {record.Id} ({record.Address}) refused: {e.Reason}"));
        }
        Emit(new DisconnectWorker(e.WorkerId, e.Generation));
        CheckStartup();
    }

    private void Unreachable(WorkerUnreachable e)
    {
        if (_members.Current(e.WorkerId, e.Generation) is { State: WorkerState.Preparing or WorkerState.Rejoining } record)
        {
            _members.Set(record with { State = WorkerState.Lost, Reason = $"unreachable while preparing: {e.Reason}" });
            Version++;
            Emit(new LogLine($"worker {record.Id} ({record.Address}) unreachable while preparing: {e.Reason}"));
        }
        Emit(new DisconnectWorker(e.WorkerId, e.Generation));
        CheckStartup();
    }

    /// <summary>
    /// This life of the worker is over: its open requests are given up and its connection closed; returns what the
    /// step's assignment sends instead (the caller advances the step once, with everything it gathered).
    /// </summary>
    private List<Dispatch> Lose(WorkerRecord record, string reason, bool announce)
    {
        _members.Set(record with { State = WorkerState.Lost, Reason = reason });
        Version++;
        if (announce) Emit(new LogLine($"worker {record.Id} ({record.Address}) lost: {reason}"));
        var next = AbandonRequestsOf(record.Id, $"lost: {reason}");
        Emit(new DisconnectWorker(record.Id, record.Generation));
        return next;
    }

    private void BeginStartupWait()
    {
        if (Run == RunState.Training)
        {
            Emit(new StartTraining(_members.Count(WorkerState.Ready)));
            return;
        }
        if (Run != RunState.Starting) return;
        Run = RunState.WaitingForWorkers;
        _startupSince = _now;
        Version++;
        CheckStartup();
    }

    private void CheckStartup()
    {
        if (_startupSince is not { } since || _step is not null) return;
        if (StartupWait.Decide(_members.All, _options, _now - since) is not { } done) return;
        foreach (var command in done) Emit(command);
        _startupSince = null;
        if (done[^1] is FailRun fail) EndRunAs(RunState.Failed, fail.Reason);
        else Run = RunState.Training;
        Version++;
    }

    private void EndRun(RunEnded e)
    {
        if (_step is not null) FailStepNow("the run ended", cancelled: true);
        _startupSince = null;
        // A run that failed (a step, the start-up wait) stays failed when its end is announced.
        if (Run != RunState.Failed) EndRunAs(e.Completed ? RunState.Finished : RunState.Failed, e.Reason);
    }

    private void EndRunAs(RunState state, string reason)
    {
        Run = state;
        _runReason = reason;
        Version++;
    }

    /// <summary>Names stragglers and hangs among the ready workers; logs each change once.</summary>
    private void JudgeHealth()
    {
        double medianStep = HealthRules.Median([.. _stepSeconds]);
        bool judging = Run is RunState.Training or RunState.WaitingForWorkers;
        var ready = _members.All.Where(r => r.State == WorkerState.Ready).ToList();
        foreach (var record in _members.All)
        {
            var meter = _members.Meter(record.Id);
            string? hung = null, straggler = null;
            if (judging && record.State == WorkerState.Ready)
            {
                hung = HealthRules.Hung(_now, OldestOpen(record.Id), meter, medianStep, _options);
                var peers = ready.Where(p => p.Id != record.Id).SelectMany(p => _members.Meter(p.Id).Latencies()).ToList();
                straggler = hung is null ? HealthRules.Straggler(meter.Latencies(), peers, _options) : null;
            }
            var health = hung is not null ? WorkerHealth.Hung : straggler is not null ? WorkerHealth.Straggler : WorkerHealth.Ok;
            if (record.State == WorkerState.Ready && health != meter.Health)
                Emit(new LogLine(health switch
                {
                    WorkerHealth.Hung => $"worker {record.Id} is hung: {hung}",
                    WorkerHealth.Straggler => $"worker {record.Id} is a straggler: {straggler}",
                    _ => meter.Health == WorkerHealth.Hung ? $"worker {record.Id} answers again" : $"worker {record.Id} is no longer a straggler",
                }));
            meter.Health = health;
            meter.HealthDetail = hung ?? straggler ?? "";
        }
    }

    public ClusterView View()
    {
        var workers = _members.All.Select(r =>
        {
            var m = _members.Meter(r.Id);
            return new WorkerView(r.Id, r.Generation, r.Address, r.Cores, r.State, r.Reason, (_now - r.LastSeen).TotalSeconds,
                m.LastLatency, HealthRules.Median(m.Latencies()), m.Throughput, m.Shards, m.Errors, r.Rejoins, m.Health, m.HealthDetail);
        }).ToList();
        return new ClusterView(_now.TotalSeconds, Run, Phase(), _currentStep, _step?.Attempt ?? 0,
            HealthRules.Median([.. _stepSeconds]), workers);
    }

    private string Phase()
    {
        if (Run is RunState.Finished or RunState.Failed) return _runReason.Length > 0 ? $"{Run.ToString().ToLowerInvariant()}: {_runReason}" : Run.ToString().ToLowerInvariant();
        if (_startupSince is { } since)
            return $"waiting for workers: {_members.Count(WorkerState.Ready)} of {_options.ExpectWorkers} ready " +
                $"({Seconds(_now - since, "F0")}s of --wait-seconds {Seconds(_options.StartupTimeout, "F0")})";
        if (_step is not { } step) return Run == RunState.Starting ? "starting" : $"between steps (last: {_currentStep})";
        if (step.WaitingSince is { } waiting)
            return $"step {step.Step}: waiting for workers ({Seconds(_now - waiting, "F0")}s of --wait-for-workers {Seconds(_options.WaitForWorkers, "F0")})";
        var a = step.Assignment!;
        int done = Enumerable.Range(0, a.BlockCount).Count(b => a.ExecutorOf(b) is not null);
        return $"step {step.Step}, attempt {step.Attempt}: {done} of {a.BlockCount} blocks in, {step.Open.Count} request(s) open";
    }

    private void Emit(ClusterCommand command) => _out.Add(command);

    private ClusterCommand[] Flush()
    {
        var commands = _out.ToArray();
        _out.Clear();
        return commands;
    }

    private static string Seconds(TimeSpan time, string format) => time.TotalSeconds.ToString(format, CultureInfo.InvariantCulture);
}

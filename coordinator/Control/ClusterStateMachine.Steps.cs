// The machine's steps: each step is planned with the workers ready at its start (a StepAssignment per attempt),
// replies and failures drive reassignment, deadlines and lost workers close requests, and when every worker that
// could compute a missing block is lost the step starts over with whoever is ready then — after waiting for one, if
// --wait-for-workers allows. Blocks are a pure function of the weights and indices, so a restarted step gives the
// same bits. A block every worker rejected is not a membership problem: the step fails instead of repeating it; a
// worker whose blocks are rejected step after step is, and is refused (RejectedStepsLimit).
using System.Globalization;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Control;

public sealed partial class ClusterStateMachine
{
    private void BeginStep(StepRequested e)
    {
        if (_step is not null) throw new InvalidOperationException($"step {e.Step} requested while step {_step.Step} is in progress");
        if (Run is RunState.Finished or RunState.Failed)
        {
            Emit(new FailStep(e.Step, $"step {e.Step}: the run has ended{(_runReason.Length > 0 ? $" ({_runReason})" : "")}"));
            return;
        }
        _startupSince = null;
        if (Run != RunState.Training) Version++;
        Run = RunState.Training;
        _currentStep = e.Step;
        _step = new StepRun(e.Step, e.Plan, _now);
        Plan();
    }

    /// <summary>The next attempt with the workers ready now, or the wait for one.</summary>
    private void Plan()
    {
        var step = _step!;
        var planning = _members.Planning();
        if (planning.Count == 0)
        {
            if (_options.WaitForWorkers <= TimeSpan.Zero)
            {
                FailStepNow($"step {step.Step}: no ready workers are left ({_members.DescribeAbsent()}); pass --wait-for-workers SECONDS to wait for them");
                return;
            }
            step.Assignment = null;
            step.WaitingSince = step.NextNotice = _now;
            Run = RunState.WaitingForWorkers;
            Version++;
            CheckWait();
            return;
        }
        step.Attempt++;
        step.LostAny = false;
        step.Norms.Clear();
        var sameHost = planning.Where(p => p.Worker.SameHost).Select(p => p.Worker.Id).ToList();
        var assignment = new StepAssignment(step.Plan.ShardCount, planning.Select(p => (p.Worker.Id, p.Throughput)).ToList(), sameHost);
        step.Assignment = assignment;
        Emit(new BeginAttempt(step.Step, step.Attempt, assignment.BlockCount, sameHost.Count > 0, assignment.HasPool));
        foreach (var dispatch in assignment.Start()) Send(dispatch);
    }

    private void Send(Dispatch dispatch)
    {
        var step = _step!;
        var assignment = step.Assignment!;
        var worker = _members.Find(dispatch.Worker)!;
        var blocks = dispatch.Blocks.Select(b =>
        {
            var (first, count) = assignment.BlockRange(b);
            return new BlockSpan(b, first, count);
        }).ToList();
        step.Open[dispatch.Id] = new OpenRequest(dispatch, worker.Generation, _now, _now + _options.ComputeTimeout);
        _members.Meter(worker.Id).Sent(_now, step.Step,
            $"step {step.Step}, attempt {step.Attempt}, blocks {string.Join(" ", blocks)}{(dispatch.Pooled ? " (pool)" : "")}");
        Emit(new SendRequest(step.Step, step.Attempt, dispatch.Id, worker.Id, worker.Generation, blocks, dispatch.Pooled, _options.ComputeTimeout));
    }

    private void Answered(ReplyReceived e)
    {
        if (Open(e.Step, e.Attempt, e.Dispatch) is not { } open) return; // a request the machine gave up on
        var step = _step!;
        var assignment = step.Assignment!;
        var dispatch = open.Dispatch;
        step.Open.Remove(dispatch.Id);
        var progress = assignment.OnReply(dispatch.Id, e.Verdicts);
        var meter = _members.Meter(dispatch.Worker);
        meter.Answered(OldestOpen(dispatch.Worker), step.Step);
        // Errors are blocks refused (bad shape or range, or non-finite and recomputed elsewhere); a pool block another
        // member claimed is no error, nor is a non-finite block every worker agrees on.
        int rejected = dispatch.Blocks.Where((b, i) => e.Verdicts[i] is BlockVerdict.Invalid
            || (e.Verdicts[i] == BlockVerdict.NonFinite && !progress.Accepted.Contains(b))).Count();
        meter.Errors += rejected;
        // Only what it computed (in a pool, the blocks it claimed) counts for its speed.
        int samples = dispatch.Blocks.Where((_, i) => e.Verdicts[i] != BlockVerdict.Elsewhere)
            .Sum(b => step.Plan.Range(assignment.BlockRange(b).FirstShard, assignment.BlockRange(b).ShardCount).Length);
        // Speed = samples over the request's round trip as the machine timed it (send to reply, on the coordinator's
        // monotonic clock), with the compute counted as the CPU time it used — within the bounds MeasuredSpeed sets, so
        // a worker's report cannot buy it a larger share than its measured speed earns (fewer shards would make a
        // worker that shares cores wait for them longer still, so that credit is kept within those bounds).
        double wall = (_now - open.SentAt).TotalSeconds;
        double seconds = MeasuredSpeed.Seconds(wall, e.ComputeSeconds, e.ComputeCpuSeconds, _options.CpuCreditLimit);
        meter.Record(samples, wall, seconds, _options.ThroughputSmoothing);
        meter.Shards += progress.Accepted.Sum(b => assignment.BlockRange(b).ShardCount);
        if (e.Norms is { } norms)
            for (int i = 0; i < dispatch.Blocks.Count && i < norms.Count; i++)
                if (progress.Accepted.Contains(dispatch.Blocks[i])) step.Norms[dispatch.Blocks[i]] = norms[i];
        if (progress.Accepted.Count > 0) Emit(new KeepBlocks(step.Step, step.Attempt, dispatch.Id, progress.Accepted));
        var next = new List<Dispatch>(progress.Next);
        meter.Judged(step.Step, rejected > 0);
        if (meter.RejectedSteps >= _options.RejectedStepsLimit && _members.Current(dispatch.Worker, open.Generation) is
            { State: WorkerState.Ready } record)
            next.AddRange(RefuseRejected(record, meter.RejectedSteps));
        Advance(next);
    }

    /// <summary>
    /// Refuses a worker whose blocks were rejected in too many consecutive steps: it sits out the rest of the run
    /// (refused, its heartbeats still answered, so it does not register again), its open requests go to the others.
    /// </summary>
    private List<Dispatch> RefuseRejected(WorkerRecord record, int steps)
    {
        string reason = $"its blocks were rejected in {steps} consecutive steps";
        _members.Set(record with { State = WorkerState.Refused, Reason = reason });
        Version++;
        Emit(new LogLine($"worker {record.Id} ({record.Address}) refused: {reason}"));
        _step?.Assignment?.Exclude(record.Id);
        var next = AbandonRequestsOf(record.Id, $"refused: {reason}");
        Emit(new DisconnectWorker(record.Id, record.Generation));
        return next;
    }

    private void Failed(RequestFailed e)
    {
        if (Open(e.Step, e.Attempt, e.Dispatch) is not { } open) return;
        var next = new List<Dispatch>(FailOpen(open, e.Reason, cancel: false));
        // The worker's other requests, if any, went to the same lost process.
        if (_members.Current(open.Dispatch.Worker, open.Generation) is { State: WorkerState.Ready } record)
            next.AddRange(Lose(record, $"request failed at step {e.Step}: {e.Reason}", announce: false));
        Advance(next);
    }

    private void Abandon(StepAbandoned e)
    {
        if (_step?.Step == e.Step) FailStepNow(e.Reason, cancelled: true);
    }

    /// <summary>The open request of this step and attempt, or null (answered, given up on, or of an earlier attempt).</summary>
    private OpenRequest? Open(long step, int attempt, int dispatch) =>
        _step is { } s && s.Step == step && s.Attempt == attempt && s.Open.TryGetValue(dispatch, out var open) ? open : null;

    private TimeSpan? OldestOpen(string worker) =>
        _step?.Open.Values.Where(o => o.Dispatch.Worker == worker).Select(o => (TimeSpan?)o.SentAt).Min();

    /// <summary>Gives up on a request because of its worker (a failure, a deadline, the worker lost): one error.</summary>
    private IReadOnlyList<Dispatch> FailOpen(OpenRequest open, string reason, bool cancel)
    {
        var step = _step!;
        var dispatch = open.Dispatch;
        step.Open.Remove(dispatch.Id);
        _members.Meter(dispatch.Worker).Errors++;
        step.LostAny = true;
        Emit(new LogLine($"step {step.Step}: worker {dispatch.Worker} failed ({reason}); its blocks go to the others"));
        if (cancel) Emit(new CancelRequest(step.Step, step.Attempt, dispatch.Id, dispatch.Worker));
        return step.Assignment!.OnFailure(dispatch.Id).Next;
    }

    /// <summary>Gives up on every open request of the worker; returns what the assignment sends instead (for Advance).</summary>
    private List<Dispatch> AbandonRequestsOf(string worker, string reason)
    {
        var next = new List<Dispatch>();
        if (_step is not { Assignment: not null } step) return next;
        foreach (var request in step.Open.Values.Where(o => o.Dispatch.Worker == worker).ToList())
            next.AddRange(FailOpen(request, reason, cancel: true));
        return next;
    }

    private void ExpireDeadlines()
    {
        if (_step is not { Assignment: not null } step) return;
        int attempt = step.Attempt;
        foreach (var open in step.Open.Values.Where(o => o.Deadline <= _now).ToList())
        {
            // A failure may have ended the attempt (or the step), or taken this request with its worker.
            if (_step != step || step.Attempt != attempt || !step.Open.TryGetValue(open.Dispatch.Id, out var still) || still != open) break;
            string reason = $"no reply within --compute-timeout {Seconds(_options.ComputeTimeout, "F0")}s";
            var next = new List<Dispatch>(FailOpen(open, reason, cancel: true));
            if (_members.Current(open.Dispatch.Worker, open.Generation) is { State: WorkerState.Ready } record)
                next.AddRange(Lose(record, $"request failed at step {step.Step}: {reason}", announce: false));
            Advance(next);
        }
    }

    /// <summary>After a reply or failure: log the assignment's decisions, send what it asks, and see if the attempt is over.</summary>
    private void Advance(IReadOnlyList<Dispatch> next)
    {
        if (_step is not { Assignment: { } assignment } step) return;
        foreach (var note in assignment.Notes) Emit(new LogLine($"step {step.Step}: {note}"));
        assignment.Notes.Clear();
        foreach (var dispatch in next) Send(dispatch);
        if (assignment.IsComplete) CompleteStep();
        else if (assignment.FailureReason is not null) AttemptFailed();
        else if (step.Open.Count == 0)
            throw new InvalidOperationException($"step {step.Step}: no request in flight but blocks are missing");
    }

    private void CompleteStep()
    {
        var step = _step!;
        var assignment = step.Assignment!;
        // Pool members still busy when every block was in: the step does not wait for them.
        CancelOpen(step);
        var blocks = Enumerable.Range(0, assignment.BlockCount).Select(b =>
        {
            var (first, count) = assignment.BlockRange(b);
            return new BlockRecord(first, count, assignment.ExecutorOf(b)!);
        }).ToList();
        var norms = step.Norms.Select(p => (blocks[p.Key].FirstShard, blocks[p.Key].ShardCount, blocks[p.Key].Executor, p.Value))
            .OrderBy(b => b.FirstShard).ToList();
        foreach (var line in GradientOutliers.Describe(step.Step, norms, _options.GradientOutlierFactor)) Emit(new LogLine(line));
        _stepSeconds.Enqueue((_now - step.StartedAt).TotalSeconds);
        while (_stepSeconds.Count > _options.HealthWindow) _stepSeconds.Dequeue();
        _step = null;
        Emit(new CompleteStep(step.Step, blocks));
    }

    private void AttemptFailed()
    {
        var step = _step!;
        string reason = $"step {step.Step}: {step.Assignment!.FailureReason}";
        CancelOpen(step);
        if (!step.LostAny) FailStepNow(reason);
        else if (step.Attempt >= _options.MaxAttempts) FailStepNow($"{reason}; gave up after {_options.MaxAttempts} attempts");
        else
        {
            Emit(new LogLine($"{reason}; starting the step over with the workers ready now"));
            Plan();
        }
    }

    private void CancelOpen(StepRun step)
    {
        foreach (var open in step.Open.Values) Emit(new CancelRequest(step.Step, step.Attempt, open.Dispatch.Id, open.Dispatch.Worker));
        step.Open.Clear();
    }

    private void FailStepNow(string reason, bool cancelled = false)
    {
        var step = _step!;
        CancelOpen(step);
        _step = null;
        if (!cancelled) EndRunAs(RunState.Failed, reason);
        Emit(new FailStep(step.Step, reason, cancelled));
    }

    /// <summary>While a step waits for a ready worker: say so every WaitNoticeInterval, and fail once the wait runs out.</summary>
    private void CheckWait()
    {
        if (_step is not { WaitingSince: { } since } step) return;
        var waited = _now - since;
        string limit = Seconds(_options.WaitForWorkers, "F0");
        if (waited >= _options.WaitForWorkers)
        {
            FailStepNow($"step {step.Step}: no worker became ready within --wait-for-workers {limit}s ({_members.DescribeAbsent()})");
            return;
        }
        if (_now < step.NextNotice) return;
        Emit(new LogLine($"step {step.Step}: waiting for workers — none ready; {Seconds(_options.WaitForWorkers - waited, "F0")}s left of " +
            $"--wait-for-workers {limit}s ({_members.DescribeAbsent()})"));
        step.NextNotice = _now + _options.WaitNoticeInterval;
    }

    private void EndWait()
    {
        var step = _step!;
        string waited = (_now - step.WaitingSince!.Value).TotalSeconds.ToString("F1", CultureInfo.InvariantCulture);
        Emit(new LogLine($"step {step.Step}: {_members.Count(WorkerState.Ready)} worker(s) ready after waiting {waited}s; continuing"));
        step.WaitingSince = null;
        Run = RunState.Training;
        Version++;
        Plan();
    }
}

// Runs the ClusterStateMachine over a Channel of events. Any thread may post; the thread that posts while the machine
// is idle steps it and drains the channel, the others only enqueue — so one thread at a time touches the machine, and
// a reply read on the step link's thread completes the step there, without a hop to another thread. Before each event
// the clock is read and the machine ticked; a timer ticks it when nothing else happens. Commands run in order: sends,
// cancels and results go to the transport, preparations to the preparer, answers to the caller that asked; the
// trainer's continuation runs after the machine is let go, so a long optimizer step never holds up heartbeats.
using System.Threading.Channels;

namespace DistTrain.Coordinator.Control;

public sealed class ClusterDriver
{
    private readonly record struct Input(ClusterEvent? Event, TaskCompletionSource<IReadOnlyList<ClusterCommand>>? Answer);

    private readonly ClusterStateMachine _machine;
    private readonly Func<TimeSpan> _clock;
    private readonly IStepTransport _transport;
    private readonly IWorkerPreparation _preparation;
    private readonly Action<string> _log;
    private readonly Channel<Input> _inbox = Channel.CreateUnbounded<Input>();
    private readonly List<Action> _afterRelease = [];
    private readonly List<SendRequest> _sends = [];
    private readonly TaskCompletionSource _trainingStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ClusterView _view;
    private long _publishedVersion;
    private int _stepping;

    /// <param name="clock">Monotonic time since the coordinator started.</param>
    public ClusterDriver(ClusterStateMachine machine, Func<TimeSpan> clock, IStepTransport transport,
        IWorkerPreparation preparation, Action<string> log)
    {
        (_machine, _clock, _transport, _preparation, _log) = (machine, clock, transport, preparation, log);
        _view = machine.View();
        _publishedVersion = machine.Version;
    }

    /// <summary>The latest published view (immutable; republished when the machine's Version moves).</summary>
    public ClusterView View => Volatile.Read(ref _view);

    public ControlOptions Options => _machine.Options;

    /// <summary>This coordinator's run id (fixed for the machine's life), as workers quote it in heartbeats.</summary>
    public string RunId => _machine.RunId;

    public void Post(ClusterEvent input) => Enqueue(new Input(input, null));

    /// <summary>Posts <paramref name="input"/> and returns the commands the machine answered it with (they are executed too).</summary>
    public Task<IReadOnlyList<ClusterCommand>> AskAsync(ClusterEvent input)
    {
        var answer = new TaskCompletionSource<IReadOnlyList<ClusterCommand>>(TaskCreationOptions.RunContinuationsAsynchronously);
        Enqueue(new Input(input, answer));
        return answer.Task;
    }

    /// <summary>Lets time pass in the machine now (the timer's input).</summary>
    public void Tick() => Enqueue(new Input(null, null));

    /// <summary>Begins the start-up wait; completes when training may start, throws WorkersUnavailableException when it may not.</summary>
    public Task StartTrainingAsync(CancellationToken cancellationToken)
    {
        Post(new TrainingRequested());
        return _trainingStarted.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Ticks the machine every <paramref name="interval"/> until cancelled.</summary>
    public async Task TickEveryAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false)) Tick();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
    }

    private void Enqueue(Input input)
    {
        _inbox.Writer.TryWrite(input);
        while (Interlocked.CompareExchange(ref _stepping, 1, 0) == 0)
        {
            Action[] after;
            try
            {
                while (_inbox.Reader.TryRead(out var next)) Process(next);
            }
            finally
            {
                after = [.. _afterRelease];
                _afterRelease.Clear();
                Volatile.Write(ref _stepping, 0);
            }
            foreach (var action in after) action();
            // An event posted between the last read and the release found the machine busy: take it now.
            if (_inbox.Reader.Count == 0) return;
        }
    }

    private void Process(Input input)
    {
        try
        {
            var now = _clock();
            if (now > _machine.Now) Execute(_machine.Tick(now));
            if (input.Event is { } e)
            {
                var commands = _machine.Step(e);
                input.Answer?.TrySetResult(commands);
                Execute(commands);
            }
        }
        catch (Exception e)
        {
            // A fault of the machine or an effect: whoever waits must hear of it rather than hang.
            _sends.Clear();
            input.Answer?.TrySetException(e);
            _log($"control plane error: {e}");
            _trainingStarted.TrySetException(e);
            After(_transport.Fail(new FailStep(_machine.View().Step, $"control plane error: {e.Message}")));
        }
        if (_machine.Version != _publishedVersion)
        {
            _publishedVersion = _machine.Version;
            Volatile.Write(ref _view, _machine.View());
        }
    }

    private void Execute(IReadOnlyList<ClusterCommand> commands)
    {
        foreach (var command in commands)
        {
            if (command is SendRequest send)
            {
                _sends.Add(send);
                continue;
            }
            FlushSends();
            switch (command)
            {
                case LogLine line: _log(line.Message); break;
                case PrepareWorker prepare: _preparation.Prepare(prepare); break;
                case DisconnectWorker disconnect: _preparation.Disconnect(disconnect); break;
                case BeginAttempt begin: _transport.BeginAttempt(begin); break;
                case CancelRequest cancel: _transport.Cancel(cancel); break;
                case KeepBlocks keep: _transport.Keep(keep); break;
                case CompleteStep complete: After(_transport.Complete(complete)); break;
                case FailStep fail: After(_transport.Fail(fail)); break;
                case StartTraining: _trainingStarted.TrySetResult(); break;
                case FailRun fail: _trainingStarted.TrySetException(new WorkersUnavailableException(fail.Reason)); break;
                case RegistrationAnswer or RegistrationRefused or HeartbeatAnswer: break; // for the caller that asked
                default: throw new InvalidOperationException($"no effect for {command.GetType().Name}");
            }
        }
        FlushSends();
    }

    private void FlushSends()
    {
        if (_sends.Count == 0) return;
        var batch = _sends.ToArray();
        _sends.Clear();
        _transport.Send(batch);
    }

    private void After(Action? action)
    {
        if (action is not null) _afterRelease.Add(action);
    }
}

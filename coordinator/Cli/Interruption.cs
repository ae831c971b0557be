// SIGINT and SIGTERM stop a long-running command the same way in every phase (waiting for workers, preparing,
// training, evaluating): the first cancels the command's token — a run then checkpoints, tells its workers and
// returns — and the process exits 128 + the signal's number (130, 143). A second signal, or a command still running
// GracePeriod after the first, exits at once with that code, so stopping is bounded whatever is stuck.
using System.Runtime.InteropServices;

namespace DistTrain.Coordinator.Cli;

public sealed class Interruption : IDisposable
{
    /// <summary>
    /// Longest orderly stop: far beyond a normal one (a checkpoint, the workers' notice, servers closing: seconds) and
    /// within the grace period docker-compose.yml gives the coordinator before it sends SIGKILL.
    /// </summary>
    public static readonly TimeSpan GracePeriod = TimeSpan.FromSeconds(20);

    private const int SigInt = 2, SigTerm = 15;
    private readonly CancellationTokenSource _cancellation = new();
    private readonly PosixSignalRegistration[] _registrations;
    private readonly TextWriter _error;
    private readonly TimeSpan _grace;
    private Timer? _watchdog;
    private int _signal;

    private Interruption(TextWriter error, TimeSpan grace)
    {
        _error = error;
        _grace = grace;
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    /// <summary>Takes SIGINT and SIGTERM from the runtime's default (terminate at once) until disposed.</summary>
    public static Interruption Register(TextWriter error, TimeSpan? grace = null) => new(error, grace ?? GracePeriod);

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _cancellation.Token;

    public bool Requested => Volatile.Read(ref _signal) != 0;

    public string SignalName => Volatile.Read(ref _signal) switch { SigInt => "SIGINT", SigTerm => "SIGTERM", _ => "no signal" };

    /// <summary>130 after SIGINT, 143 after SIGTERM: what a shell reports for a process the signal killed.</summary>
    public int ExitCode => 128 + Volatile.Read(ref _signal);

    private void Handle(PosixSignalContext context)
    {
        context.Cancel = true; // this program stops itself, in order
        int number = context.Signal == PosixSignal.SIGINT ? SigInt : SigTerm;
        if (Interlocked.CompareExchange(ref _signal, number, 0) != 0)
        {
            _error.WriteLine($"{(number == SigInt ? "SIGINT" : "SIGTERM")} again: exiting now, without finishing the shutdown");
            Environment.Exit(ExitCode);
        }
        _watchdog = new Timer(_ =>
        {
            _error.WriteLine($"still stopping {_grace.TotalSeconds:F0}s after {SignalName}: exiting now, without finishing the shutdown");
            Environment.Exit(ExitCode);
        }, null, _grace, Timeout.InfiniteTimeSpan);
        // Off the signal's thread: cancelling runs the run's callbacks synchronously.
        ThreadPool.QueueUserWorkItem(_ =>
        {
            try { _cancellation.Cancel(); }
            catch (ObjectDisposedException) { } // the command had already returned
        });
    }

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _watchdog?.Dispose();
        _cancellation.Dispose();
    }
}

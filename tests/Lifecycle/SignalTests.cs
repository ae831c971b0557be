// SIGTERM and SIGINT stop the coordinator the same way in every mode and phase, as real processes: within 10 s,
// exit 143 (SIGTERM) or 130 (SIGINT), one line saying what was kept — a checkpoint of the last completed step when
// training, nothing while waiting for workers (no step yet) — remote workers told (they exit 0), and `--resume`
// ending bit-identical to an uninterrupted run. Training is caught by polling the step log, never by sleeping.
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using DistTrain.Core.Training;
using DistTrain.Tests.Distributed;
using DistTrain.Tests.Fault;

namespace DistTrain.Tests.Lifecycle;

[Collection(FaultProcessCollection.Name)]
public sealed partial class SignalTests(SignalTests.Reference reference) : IClassFixture<SignalTests.Reference>, IDisposable
{
    private static readonly TimeSpan StopBound = TimeSpan.FromSeconds(10), WorkerExitBound = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(120);
    private readonly string _dir = FaultRuns.NewDirectory("disttrain-signal-");
    private readonly ProcessHarness _processes = new();

    /// <summary>One config for every test and its uninterrupted weights (local mode, which distributed mode equals).</summary>
    public sealed class Reference : IDisposable
    {
        public Reference()
        {
            // 2,000 steps of a 64-256-256-4 MLP: a few seconds, long enough to be caught mid-run after step 20.
            Config = FaultRuns.WriteConfig(Directory, samples: 32_000, epochs: 4, hidden: 256, features: 64, batch: 64, shard: 16);
            Weights = FaultRuns.Reference(Directory, Config);
        }

        public string Directory { get; } = FaultRuns.NewDirectory("disttrain-signal-reference-");
        public string Config { get; }
        public byte[] Weights { get; }
        public void Dispose() => FaultRuns.DeleteDirectory(Directory);
    }

    private string Checkpoints => Path.Combine(_dir, "checkpoints");
    private string StepLog => Path.Combine(_dir, "steps.jsonl");
    private string Save => Path.Combine(_dir, "final.safetensors");

    /// <summary>The run's command line; --resume from the start, so the same line continues an interrupted run.</summary>
    private string[] Train(params string[] mode) =>
    [
        ProcessHarness.CoordinatorDll, "train", "--config", reference.Config, "--save", Save, "--step-log", StepLog,
        "--checkpoint-dir", Checkpoints, "--resume", "--quiet", .. mode,
    ];

    private (Process Process, StringBuilder Output) Start(string[] args) => SigIntIgnoredHere()
        // A process ignoring SIGINT passes that on to its children; env restores the default a terminal's process has.
        ? _processes.StartProgram("env", ["--default-signal=INT", "dotnet", .. args], environment: null)
        : _processes.StartProgram("dotnet", args, environment: null);

    private (Process Process, StringBuilder Output)[] Workers(string url, int count) =>
        [.. Enumerable.Range(0, count).Select(_ => _processes.Start(ProcessHarness.WorkerDll, "--coordinator", url, "--threads", "1",
            "--port", "0", "--register-timeout", "60", "--cache-dir", Path.Combine(_dir, "cache")))];

    [Fact]
    public void SigtermDuringLocalTrainingCheckpointsAndExits143ThenResumesBitIdentically() =>
        _ = InterruptTrainingThenResume(FaultCluster.SigTerm, () => Train("--threads", "2"));

    [Fact]
    public void SigintDuringLocalTrainingBehavesTheSameWithExitCode130() =>
        _ = InterruptTrainingThenResume(FaultCluster.SigInt, () => Train("--threads", "2"));

    [Fact]
    public void SigtermDuringTrainingWithInProcessWorkersCheckpointsAndExits143ThenResumesBitIdentically()
    {
        string output = InterruptTrainingThenResume(FaultCluster.SigTerm, () => Train("--workers", "2"));
        // In-process workers are the coordinator's own: stopped with it, never sent a notice.
        Assert.DoesNotContain("told the workers", output);
    }

    [Fact]
    public void SigtermDuringTrainingWithRemoteWorkersTellsThemAndResumesWithNewOnesBitIdentically()
    {
        var workers = new List<(Process, StringBuilder)>();
        InterruptTrainingThenResume(FaultCluster.SigTerm, () =>
        {
            string url = $"http://127.0.0.1:{ProcessHarness.FreePort()}";
            workers.AddRange(Workers(url, 2));
            return Train("--listen", url, "--expect-workers", "2", "--wait-seconds", "60");
        }, afterInterruption: () =>
        {
            foreach (var output in AssertExitedZeroSoon(workers)) Assert.Contains("interrupted: SIGTERM; this worker's part is done", output);
            workers.Clear();
        });
        AssertExitedZeroSoon(workers);
    }

    [Fact]
    public void SigtermWhileWaitingForWorkersExits143WithNothingToCheckpointAndTellsTheRegisteredWorker()
    {
        string url = $"http://127.0.0.1:{ProcessHarness.FreePort()}";
        var coordinator = Start(Train("--listen", url, "--expect-workers", "2", "--wait-seconds", "60"));
        var worker = Workers(url, 1);
        // One of the two expected workers is ready: the coordinator is waiting for the other.
        WaitUntil(coordinator, () => Regex.IsMatch(ProcessHarness.Text(coordinator.Output), @"worker w1 \(.*\) ready"), "worker w1 ready");
        var (code, output, seconds) = Stop(coordinator, FaultCluster.SigTerm);
        Assert.True(code == 143, output);
        Assert.True(seconds < StopBound.TotalSeconds, $"took {seconds:F1}s to stop:\n{output}");
        Assert.Equal("interrupted by SIGTERM while waiting for workers: nothing to checkpoint before the first step", TheLine(output, "SIGTERM"));
        Assert.Contains("run interrupted: SIGTERM; told the workers: w1 at once", output);
        Assert.Empty(Checkpoint.List(Checkpoints));
        Assert.Contains("interrupted: SIGTERM; this worker's part is done", Assert.Single(AssertExitedZeroSoon(worker)));
    }

    /// <summary>
    /// Starts the run <paramref name="args"/> gives, signals it once its step log passes step 20, checks the stop,
    /// then runs the same line again (with whatever <paramref name="args"/> starts for it) to the end. Returns the
    /// interrupted run's output.
    /// </summary>
    private string InterruptTrainingThenResume(int signal, Func<string[]> args, Action? afterInterruption = null)
    {
        string name = signal == FaultCluster.SigInt ? "SIGINT" : "SIGTERM";
        var run = Start(args());
        WaitUntil(run, () => FaultCluster.LastStepOf(StepLog) >= 20, "step 20 in the step log");
        var (code, output, seconds) = Stop(run, signal);
        Assert.True(code == (signal == FaultCluster.SigInt ? 130 : 143), $"exit code {code}:\n{output}");
        Assert.True(seconds < StopBound.TotalSeconds, $"took {seconds:F1}s to stop:\n{output}");
        var line = LineFormat().Match(TheLine(output, name));
        Assert.True(line.Success, output);
        long step = long.Parse(line.Groups["step"].Value);
        Assert.Equal(2000, long.Parse(line.Groups["total"].Value));
        Assert.True(step is > 20 and < 2000, $"stopped at step {step}");
        // The checkpoint holds the last step the step log shows, and it is the newest one.
        Assert.Equal(Checkpoint.PathFor(Checkpoints, step), line.Groups["path"].Value);
        Assert.Equal(step, Checkpoint.List(Checkpoints)[0].Step);
        Assert.Equal(step - 1, FaultCluster.LastStepOf(StepLog));
        Assert.False(File.Exists(Save));
        afterInterruption?.Invoke();

        var resumed = Start(args());
        var (resumedCode, resumedOutput) = ProcessHarness.Wait(resumed, RunTimeout);
        Assert.True(resumedCode == 0, resumedOutput);
        Assert.Contains($"resuming from step {step} ", resumedOutput);
        Assert.Equal(reference.Weights, File.ReadAllBytes(Save));
        return output;
    }

    /// <summary>Sends <paramref name="signal"/> and waits (bounded) for the exit: its code, the output, the seconds it took.</summary>
    private static (int Code, string Output, double Seconds) Stop((Process Process, StringBuilder Output) run, int signal)
    {
        var clock = Stopwatch.StartNew();
        FaultCluster.Signal(run.Process, signal);
        bool exited = run.Process.WaitForExit(StopBound + TimeSpan.FromSeconds(20));
        double seconds = clock.Elapsed.TotalSeconds;
        Assert.True(exited, $"still running {seconds:F0}s after the signal:\n{ProcessHarness.Text(run.Output)}");
        run.Process.WaitForExit(); // drains the output
        return (run.Process.ExitCode, ProcessHarness.Text(run.Output), seconds);
    }

    /// <summary>
    /// The one line saying the run was interrupted; it is the last thing the coordinator prints. (It goes to stderr,
    /// the run's opening "training …" header to stdout, and the two are captured by separate readers: a run stopped
    /// within its first second can have the header appended after it. Nothing else may follow it.)
    /// </summary>
    private static string TheLine(string output, string signal)
    {
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var line = Assert.Single(lines, l => l.StartsWith($"interrupted by {signal}", StringComparison.Ordinal));
        Assert.All(lines[(Array.IndexOf(lines, line) + 1)..], after => Assert.StartsWith("training ", after));
        return line;
    }

    private static void WaitUntil((Process Process, StringBuilder Output) run, Func<bool> condition, string what)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!condition())
        {
            Assert.False(run.Process.HasExited, $"the run ended before {what}:\n{ProcessHarness.Text(run.Output)}");
            Assert.True(DateTime.UtcNow < until, $"no {what} within 60 s:\n{ProcessHarness.Text(run.Output)}");
            Thread.Sleep(10);
        }
    }

    private static IReadOnlyList<string> AssertExitedZeroSoon(IEnumerable<(Process Process, StringBuilder Output)> workers)
    {
        var clock = Stopwatch.StartNew();
        var outputs = new List<string>();
        foreach (var (process, output) in workers)
        {
            var left = WorkerExitBound - clock.Elapsed;
            Assert.True(process.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero),
                $"worker {process.Id} still runs {WorkerExitBound.TotalSeconds}s after its coordinator:\n{ProcessHarness.Text(output)}");
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"worker exit code {process.ExitCode}:\n{ProcessHarness.Text(output)}");
            outputs.Add(ProcessHarness.Text(output));
        }
        return outputs;
    }

    /// <summary>Whether this process ignores SIGINT (bit 2 of /proc/self/status SigIgn), which children inherit.</summary>
    private static bool SigIntIgnoredHere()
    {
        var mask = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return mask is not null && (Convert.ToUInt64(mask["SigIgn:".Length..].Trim(), 16) & (1UL << (FaultCluster.SigInt - 1))) != 0;
    }

    [GeneratedRegex(@"^interrupted by SIG(?:TERM|INT) at step (?<step>\d+) of (?<total>\d+): checkpoint written to (?<path>\S+); continue with --resume$")]
    private static partial Regex LineFormat();

    public void Dispose()
    {
        _processes.Dispose();
        FaultRuns.DeleteDirectory(_dir);
    }
}

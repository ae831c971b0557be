// A coordinator and workers as real processes for fault tests: fixed ports so a restarted worker comes back at its
// old address, POSIX signals by pid (SIGKILL, SIGSTOP, SIGCONT), and waits driven by the step log and the output —
// never by sleeps. Every wait is bounded; Dispose kills exactly the processes started here (stopped ones included).
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using DistTrain.Tests.Distributed;

namespace DistTrain.Tests.Fault;

public sealed class FaultCluster : IDisposable
{
    public const int SigInt = 2, SigKill = 9, SigTerm = 15, SigCont = 18, SigStop = 19;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private readonly List<Process> _started = [];
    private readonly string _token = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
    private readonly Dictionary<int, (Process Process, StringBuilder Output)> _workers = [];
    private readonly int[] _workerPorts;
    private (Process Process, StringBuilder Output)? _coordinator;

    public FaultCluster(string directory, string config, int workerSlots, string coordinatorHost = "127.0.0.1")
    {
        Directory = directory;
        Config = config;
        CoordinatorHost = coordinatorHost;
        Port = ProcessHarness.FreePort();
        _workerPorts = Enumerable.Range(0, workerSlots).Select(_ => ProcessHarness.FreePort()).ToArray();
    }

    public string Directory { get; }
    public string Config { get; }
    public string CoordinatorHost { get; }
    public int Port { get; }
    public string Url => $"http://{CoordinatorHost}:{Port}";
    public string StepLog => Path.Combine(Directory, "steps.jsonl");
    public string Save => Path.Combine(Directory, "final.safetensors");
    public string Checkpoints => Path.Combine(Directory, "checkpoints");
    public Process Coordinator => _coordinator!.Value.Process;
    public string CoordinatorOutput => Text(_coordinator!.Value.Output);

    /// <summary>Starts (or, after a crash, restarts) the coordinator; extra flags follow the common ones.</summary>
    public void StartCoordinator(int expectWorkers, params string[] extra)
    {
        string[] args =
        [
            ProcessHarness.CoordinatorDll, "train", "--config", Config, "--listen", Url, "--expect-workers", expectWorkers.ToString(),
            "--save", Save, "--step-log", StepLog, "--quiet", "--wait-seconds", "60", "--heartbeat-timeout", "3", .. extra,
        ];
        // A restarted coordinator keeps the earlier output, so a test sees the whole story.
        var output = _coordinator?.Output ?? new StringBuilder();
        if (_coordinator is not null) lock (output) output.AppendLine("--- coordinator restarted ---");
        _coordinator = (Start("dotnet", args, output), output);
    }

    /// <summary>Starts worker <paramref name="slot"/> at its fixed port (optionally in a network namespace).</summary>
    /// <remarks>
    /// A worker in a network namespace stands for another host, so it refuses the same-host transport (shared memory
    /// and the Unix-socket step link): otherwise a cut link would leave its steps running and test nothing.
    /// </remarks>
    /// <param name="sameHostTransport">false: the worker refuses it even on the loopback address (steps over gRPC).</param>
    /// <param name="extra">Flags added to the worker's command line.</param>
    public void StartWorker(int slot, string host = "127.0.0.1", string? netns = null, bool sameHostTransport = true,
        IEnumerable<string>? extra = null)
    {
        bool refuse = netns is not null || !sameHostTransport;
        string[] worker =
        [
            ProcessHarness.WorkerDll, "--coordinator", Url, "--threads", "1", "--port", _workerPorts[slot].ToString(), "--host", host,
            "--register-timeout", "60", "--cache-dir", Path.Combine(Directory, "cache"), .. refuse ? new[] { "--shared-memory", "false" } : [],
            .. extra ?? [],
        ];
        var output = _workers.TryGetValue(slot, out var old) ? old.Output : new StringBuilder();
        var process = netns is null ? Start("dotnet", worker, output) : Start("ip", ["netns", "exec", netns, "dotnet", .. worker], output);
        _workers[slot] = (process, output);
    }

    public Process Worker(int slot) => _workers[slot].Process;

    /// <summary>The address worker <paramref name="slot"/> registers with (on 127.0.0.1).</summary>
    public string WorkerAddress(int slot) => $"http://127.0.0.1:{_workerPorts[slot]}";

    /// <summary>The coordinator's output and, per worker slot, whether it runs and the tail of its output: what a failed wait reports.</summary>
    public string Diagnostics()
    {
        var text = new StringBuilder(CoordinatorOutput);
        foreach (var (slot, (process, output)) in _workers.OrderBy(w => w.Key))
        {
            string state = process.HasExited ? $"exited with {process.ExitCode}" : "running";
            string tail = Text(output);
            if (tail.Length > 4000) tail = "…" + tail[^4000..];
            text.AppendLine($"--- worker slot {slot} (pid {process.Id}, {state}) ---").AppendLine(tail);
            if (!process.HasExited) text.AppendLine(ThreadStates(process.Id));
        }
        return text.ToString();
    }
    /// <summary>
    /// Each thread of a live process as the kernel sees it (name, state R/S/D/T, where it sleeps), so a worker that
    /// stopped answering shows whether it was stopped, blocked in a call, or busy.
    /// </summary>
    private static string ThreadStates(int pid)
    {
        try
        {
            var lines = new List<string>();
            foreach (var task in System.IO.Directory.GetDirectories($"/proc/{pid}/task"))
            {
                string stat = File.ReadAllText(Path.Combine(task, "stat"));
                int open = stat.IndexOf('('), close = stat.LastIndexOf(')');
                string name = stat[(open + 1)..close];
                string threadState = stat[(close + 2)..].Split(' ')[0];
                string wchan = File.Exists(Path.Combine(task, "wchan")) ? File.ReadAllText(Path.Combine(task, "wchan")).Trim() : "?";
                lines.Add($"{Path.GetFileName(task)} {name} {threadState} {wchan}");
            }
            return "threads (tid name state wait): " + string.Join("; ", lines);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"threads: unreadable ({e.Message})";
        }
    }

    public string WorkerOutput(int slot) => Text(_workers[slot].Output);

    /// <summary>Sends <paramref name="signal"/> to exactly this process; a kill waits until the process is gone.</summary>
    public static void Signal(Process process, int signal)
    {
        if (process.HasExited) return;
        if (SendSignal(process.Id, signal) != 0 && !process.HasExited)
            throw new InvalidOperationException($"kill({process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        if (signal == SigKill && !process.WaitForExit(10_000)) throw new TimeoutException($"process {process.Id} survived SIGKILL");
    }

    /// <summary>The step of the step log's last whole line (-1 when none); only the file's tail is read, so polling stays cheap.</summary>
    public long LastStep() => LastStepOf(StepLog);

    /// <summary>The step of the last whole line of the step log at <paramref name="stepLog"/> (-1 when none).</summary>
    public static long LastStepOf(string stepLog)
    {
        using var record = LastRecord(stepLog);
        return record is null ? -1 : record.RootElement.GetProperty("step").GetInt64();
    }

    /// <summary>The workers that computed the last logged step.</summary>
    public IReadOnlyList<string> LastExecutors()
    {
        using var record = LastRecord(StepLog);
        return record is null ? [] : record.RootElement.GetProperty("blocks").EnumerateArray()
            .Select(b => b.GetProperty("executor").GetString()!).Distinct().ToList();
    }

    private static JsonDocument? LastRecord(string stepLog)
    {
        if (!File.Exists(stepLog)) return null;
        using var stream = new FileStream(stepLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        int length = (int)Math.Min(stream.Length, 1 << 16);
        stream.Seek(-length, SeekOrigin.End);
        var tail = new byte[length];
        stream.ReadExactly(tail);
        // The last line may still be being written: take the last one that ends with a newline.
        int end = Array.LastIndexOf(tail, (byte)'\n');
        if (end <= 0) return null;
        int start = Array.LastIndexOf(tail, (byte)'\n', end - 1) + 1;
        return JsonDocument.Parse(tail.AsMemory(start, end - start));
    }

    /// <summary>Waits (bounded) until the step log shows step <paramref name="step"/>; fails if the coordinator exits first.</summary>
    public void WaitForStep(long step, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (LastStep() < step)
        {
            if (Coordinator.HasExited) throw new InvalidOperationException($"the coordinator exited before step {step}:\n{Diagnostics()}");
            if (DateTime.UtcNow > until) throw new TimeoutException($"step {step} not reached (at {LastStep()}):\n{Diagnostics()}");
            Thread.Sleep(20);
        }
    }

    /// <summary>Waits (bounded) until the coordinator's output has <paramref name="count"/> lines containing <paramref name="text"/>.</summary>
    public void WaitForOutput(string text, int count = 1, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (Occurrences(CoordinatorOutput, text) < count)
        {
            if (Coordinator.HasExited) throw new InvalidOperationException($"the coordinator exited before printing '{text}':\n{Diagnostics()}");
            if (DateTime.UtcNow > until) throw new TimeoutException($"'{text}' ×{count} not printed:\n{Diagnostics()}");
            Thread.Sleep(10);
        }
    }

    public static int Occurrences(string haystack, string needle)
    {
        int count = 0;
        for (int at = haystack.IndexOf(needle, StringComparison.Ordinal); at >= 0; at = haystack.IndexOf(needle, at + 1, StringComparison.Ordinal))
            count++;
        return count;
    }

    /// <summary>Waits for the coordinator to exit (bounded); returns its exit code.</summary>
    public int WaitForCoordinator(TimeSpan timeout)
    {
        if (!Coordinator.WaitForExit(timeout))
            throw new TimeoutException($"the coordinator did not exit within {timeout.TotalSeconds}s:\n{Diagnostics()}");
        Coordinator.WaitForExit(); // drains the output readers
        return Coordinator.ExitCode;
    }

    /// <summary>The step log as (step, epoch, indices per executor), the last record of a step winning (a resumed run repeats steps).</summary>
    public SortedDictionary<long, StepRecord> ReadSteps()
    {
        var steps = new SortedDictionary<long, StepRecord>();
        foreach (var line in File.ReadLines(StepLog))
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            var blocks = root.GetProperty("blocks").EnumerateArray()
                .Select(b => (Executor: b.GetProperty("executor").GetString()!, Indices: b.GetProperty("indices").EnumerateArray().Select(i => i.GetInt32()).ToArray()))
                .ToList();
            steps[root.GetProperty("step").GetInt64()] = new StepRecord(root.GetProperty("epoch").GetInt32(), blocks);
        }
        return steps;
    }

    private Process Start(string program, IEnumerable<string> args, StringBuilder output)
    {
        var info = Infrastructure.CliProcess.StartInfo(program, args);
        // One deployment token for the whole cluster: nodes bound beyond loopback (the namespaces) require one.
        info.Environment["DISTTRAIN_TOKEN"] = _token;
        var process = ProcessHarness.StartCapturing(info, output);
        _started.Add(process);
        return process;
    }

    private static string Text(StringBuilder output)
    {
        lock (output) return output.ToString();
    }

    public void Dispose()
    {
        foreach (var process in _started)
        {
            try
            {
                // A stopped process dies of SIGKILL too; no SIGCONT needed.
                if (!process.HasExited) process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
            catch (InvalidOperationException) { }
            process.Dispose();
        }
    }
}

/// <summary>One step of the step log: its epoch and the indices each executor computed.</summary>
public sealed record StepRecord(int Epoch, IReadOnlyList<(string Executor, int[] Indices)> Blocks);

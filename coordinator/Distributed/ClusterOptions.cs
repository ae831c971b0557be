// Settings of distributed mode, from `disttrain train` flags: either --listen URL --expect-workers N (remote workers
// register) or --workers N (N in-process workers over the same gRPC path on 127.0.0.1); and the node's security.
using System.Globalization;
using DistTrain.Core;
using DistTrain.Protos.Security;

namespace DistTrain.Coordinator.Distributed;

public sealed class ClusterOptions
{
    public string Listen { get; init; } = "http://127.0.0.1:0";
    public int ExpectWorkers { get; init; }
    /// <summary>Ready workers enough to start when some of the expected ones were refused.</summary>
    public int MinWorkers { get; init; }
    /// <summary>In-process workers to start (0 = wait for remote ones).</summary>
    public int InProcessWorkers { get; init; }
    public int InProcessThreads { get; init; } = 1;
    public string? CacheDir { get; init; }
    public TimeSpan WaitTimeout { get; init; } = TimeSpan.FromSeconds(120);
    public TimeSpan ComputeTimeout { get; init; } = TimeSpan.FromSeconds(120);
    public TimeSpan PrepareTimeout { get; init; } = TimeSpan.FromSeconds(120);
    public TimeSpan DatasetTimeout { get; init; } = TimeSpan.FromMinutes(10);
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How long a run with no ready worker left waits for one (0: fail at once).</summary>
    public TimeSpan WaitForWorkers { get; init; } = TimeSpan.Zero;
    /// <summary>Workers the coordinator's registry holds at most (--max-workers).</summary>
    public int MaxWorkers { get; init; } = 256;
    /// <summary>A lost or refused worker silent this long is forgotten (--forget-after).</summary>
    public TimeSpan ForgetAfter { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>
    /// Directory (on a memory file system) for the same-host transport offered to workers that can open it; null
    /// turns it off and every worker gets weights and gradients in its messages (gRPC or the TCP step link).
    /// </summary>
    public string? SharedMemoryRoot { get; init; } = DefaultSharedMemoryRoot;

    /// <summary>/dev/shm where it exists (Linux), else none (the same-host transport is off).</summary>
    public static string? DefaultSharedMemoryRoot => Directory.Exists("/dev/shm") ? "/dev/shm" : null;
    /// <summary>
    /// How gRPC workers get each step's weights: fetched from the coordinator, in the request body, or (auto) fetched
    /// when they are larger than a request can carry without waiting for HTTP/2 flow control. All give the same bits.
    /// </summary>
    public WeightsTransfer WeightsTransfer { get; init; } = WeightsTransfer.Auto;
    /// <summary>
    /// Offer workers outside the shared memory a TCP step link (TcpLinkHost, TLS when the node serves TLS) for their
    /// steps instead of gRPC calls; off with --tcp-link off.
    /// </summary>
    public bool TcpLink { get; init; } = true;
    /// <summary>The TCP step link's port (0: any free port; workers learn it in Prepare).</summary>
    public int TcpLinkPort { get; init; }
    /// <summary>Give each same-host worker CPUs of its own for its compute threads (auto) or leave them to the OS (off).</summary>
    public bool BindCpus { get; init; } = true;
    /// <summary>Log a block whose gradient norm per shard exceeds this multiple of the step's median (0: off).</summary>
    public double GradientOutlierFactor { get; init; }
    /// <summary>Token and TLS for the coordinator's server and its calls to workers.</summary>
    public NodeSecurity Security { get; init; } = NodeSecurity.None;

    /// <summary>Null when the flags ask for local mode.</summary>
    public static ClusterOptions? FromFlags(CommandOptions flags, int threads)
    {
        int? workers = flags.GetInt("--workers", 1), expect = flags.GetInt("--expect-workers", 1);
        bool listen = flags.Get("--listen") is not null;
        if (workers is null && !listen && expect is null) return null;
        if (workers is not null && (listen || expect is not null))
            throw new UserInputException("train: --workers N (in-process) cannot be combined with --listen/--expect-workers");
        if (workers is null && !(listen && expect is not null))
            throw new UserInputException("train: distributed mode needs both --listen URL and --expect-workers N");
        int count = workers ?? expect!.Value;
        int min = flags.GetInt("--min-workers", 1) ?? count;
        int maxWorkers = flags.GetInt("--max-workers", 1) ?? 256;
        if (maxWorkers < count) throw new UserInputException($"train: --max-workers {maxWorkers} is below the {count} expected workers");
        if (min > count) throw new UserInputException($"train: --min-workers {min} exceeds the {count} expected workers");
        string url = flags.Get("--listen") ?? "http://127.0.0.1:0";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new UserInputException($"train: --listen must be an http(s) URL like http://0.0.0.0:5100, found '{url}'");
        var security = NodeSecurity.Create(SecurityOptions.Read(flags.Get, flags.Environment),
            uri.Host, "coordinator", workers is null ? Console.Error.WriteLine : _ => { });
        if (uri.Scheme != security.Scheme)
            throw new UserInputException(security.ServesTls
                ? $"train: with --tls-cert the coordinator serves TLS; --listen must be https://, found '{url}'"
                : $"train: --listen {url} needs --tls-cert and --tls-key");
        // In-process workers share a secret no other process knows, so even a laptop run is not open to local users.
        if (workers is not null && security.Token is null) security = security.WithToken(SharedToken.Random());
        double outlier = flags.GetDouble("--gradient-outlier-factor") ?? 0;
        if (outlier != 0 && !(outlier > 1))
            throw new UserInputException($"train: --gradient-outlier-factor must be above 1 (or 0: off), found {outlier.ToString(CultureInfo.InvariantCulture)}");
        return new ClusterOptions
        {
            Listen = url, ExpectWorkers = count, MinWorkers = min,
            InProcessWorkers = workers ?? 0, InProcessThreads = Math.Max(1, threads / count),
            CacheDir = flags.Get("--cache-dir"),
            WaitTimeout = Seconds(flags, "--wait-seconds", 120),
            ComputeTimeout = Seconds(flags, "--compute-timeout", 120),
            WaitForWorkers = TimeSpan.FromSeconds(flags.GetInt("--wait-for-workers", 0) ?? 0),
            HeartbeatTimeout = Seconds(flags, "--heartbeat-timeout", 10),
            MaxWorkers = maxWorkers, ForgetAfter = Seconds(flags, "--forget-after", 600),
            BindCpus = flags.Get("--bind-cpus") switch
            {
                null or "auto" => true,
                "off" => false,
                var other => throw new UserInputException($"train: --bind-cpus must be auto or off, found '{other}'"),
            },
            WeightsTransfer = flags.Get("--weights-transfer") switch
            {
                null or "auto" => WeightsTransfer.Auto,
                "fetch" => WeightsTransfer.Fetch,
                "push" => WeightsTransfer.Push,
                var other => throw new UserInputException($"train: --weights-transfer must be auto, fetch or push, found '{other}'"),
            },
            TcpLink = flags.Get("--tcp-link") switch
            {
                null or "auto" => true,
                "off" => false,
                var other => throw new UserInputException($"train: --tcp-link must be auto or off, found '{other}'"),
            },
            TcpLinkPort = flags.GetInt("--tcp-link-port", 0) is { } port
                ? port <= 65535 ? port : throw new UserInputException($"train: --tcp-link-port must be 0..65535, found {port}")
                : 0,
            SharedMemoryRoot = flags.Get("--shared-memory") is { } root
                ? root is "off" or "false" || root.Length == 0 ? null : root
                : DefaultSharedMemoryRoot,
            Security = security,
            GradientOutlierFactor = outlier,
        };
    }

    private static TimeSpan Seconds(CommandOptions flags, string name, int fallback) =>
        TimeSpan.FromSeconds(flags.GetInt(name, 1) ?? fallback);

    public override string ToString() => InProcessWorkers > 0
        ? $"{InProcessWorkers} in-process worker(s) × {InProcessThreads} thread(s)"
        : string.Create(CultureInfo.InvariantCulture, $"{ExpectWorkers} remote worker(s) via {Listen}; {Security}");
}

/// <summary>How a gRPC worker gets a step's weights (ClusterOptions.WeightsTransfer).</summary>
public enum WeightsTransfer
{
    /// <summary>Fetch when the encoded weights exceed <see cref="StepTransport.AutoFetchBytes"/>, else push.</summary>
    Auto,
    Fetch,
    Push,
}

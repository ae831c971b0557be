// The worker's settings, bound from appsettings.json, DISTTRAIN_WORKER__* environment variables and flags
// (--coordinator URL --port N --data PATH --threads N --cache-dir DIR --host NAME --advertise NAME --max-message-bytes N --shared-memory true|false --shared-memory-dir DIR --cpus auto|off|LIST --serve-forever).
using DistTrain.Core.Training;

namespace DistTrain.Worker;

public sealed class WorkerOptions
{
    public const string Section = "Worker";

    /// <summary>The coordinator's URL, e.g. http://127.0.0.1:5100.</summary>
    public string Coordinator { get; set; } = "";
    /// <summary>Port to serve on; 0 picks a free one (the address registered is the one actually bound).</summary>
    public int Port { get; set; }
    /// <summary>Interface to bind and the host name put in the registered address.</summary>
    public string Host { get; set; } = "127.0.0.1";
    /// <summary>
    /// Host name or address registered with the coordinator when it differs from Host; when Host is a wildcard
    /// (0.0.0.0, ::) and this is empty, the local address this machine uses to reach the coordinator.
    /// </summary>
    public string? Advertise { get; set; }
    /// <summary>Overrides the data path the coordinator's DataSpec names (this machine's copy of the files).</summary>
    public string? Data { get; set; }
    /// <summary>Compute threads (0 = all cores).</summary>
    public int Threads { get; set; }
    /// <summary>Where datasets received from the coordinator are cached, keyed by fingerprint.</summary>
    public string? CacheDir { get; set; }
    /// <summary>Largest gRPC message accepted or sent; the coordinator is refused in Prepare if its model needs more.</summary>
    public int MaxMessageBytes { get; set; } = 64 << 20;
    /// <summary>Largest dataset accepted from the coordinator (bytes).</summary>
    public long MaxDatasetBytes { get; set; } = 4L << 30;
    /// <summary>How long the first registration keeps trying before giving up (seconds); after that, never.</summary>
    public int RegisterTimeoutSeconds { get; set; } = 120;
    /// <summary>
    /// Accept the coordinator's offer of shared-memory files for weights and gradients (used only when this worker
    /// can open them, i.e. it runs on the coordinator's machine and sees its /dev/shm).
    /// </summary>
    public bool SharedMemory { get; set; } = true;
    /// <summary>
    /// The only directory under which offered shared-memory files are opened (the coordinator's --shared-memory root):
    /// an offer naming a file elsewhere is refused.
    /// </summary>
    public string SharedMemoryDir { get; set; } = "/dev/shm";
    /// <summary>
    /// Where the compute threads run: "auto" binds them to the CPUs the coordinator assigns to same-host workers
    /// (disjoint per worker), "off" leaves them to the OS, a list such as "0-3" binds thread i to the i-th CPU.
    /// </summary>
    public string Cpus { get; set; } = "auto";
    /// <summary>Name reported in logs; defaults to the registered id.</summary>
    public string? Name { get; set; }
    /// <summary>
    /// When the coordinator announces the end of its run, keep serving and register with the next coordinator at the
    /// same URL instead of exiting 0.
    /// </summary>
    public bool ServeForever { get; set; }

    /// <summary>The CPUs of an explicit --cpus list (null for auto and off).</summary>
    public IReadOnlyList<int>? FixedCpus { get; private set; }

    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;

    public string EffectiveCacheDir => string.IsNullOrEmpty(CacheDir)
        ? Path.Combine(Path.GetTempPath(), "disttrain-cache")
        : CacheDir;

    /// <summary>Checks the settings; every message names the flag and the value.</summary>
    public void Validate()
    {
        if (!Uri.TryCreate(Coordinator, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new Core.UserInputException($"--coordinator must be an http(s) URL, found '{Coordinator}'");
        if (Port is < 0 or > 65535) throw new Core.UserInputException($"--port must be 0..65535, found {Port}");
        if (Threads is < 0 or > TrainingConfig.MaxThreads)
            throw new Core.UserInputException($"--threads must be 0..{TrainingConfig.MaxThreads} (0 = all cores), found {Threads}");
        if (Cpus is not ("auto" or "off")) FixedCpus = CpuAffinity.Parse(Cpus, "--cpus (auto, off or a list like 0-3)");
        if (string.IsNullOrWhiteSpace(SharedMemoryDir))
            throw new Core.UserInputException("--shared-memory-dir must name a directory, found an empty value");
        if (MaxMessageBytes < 1 << 20)
            throw new Core.UserInputException($"--max-message-bytes must be ≥ 1048576, found {MaxMessageBytes}");
    }
}

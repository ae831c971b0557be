// The worker's option table: every flag, its configuration key ("worker:port") and so its DISTTRAIN_ variable
// (DISTTRAIN_WORKER__PORT). Help, parsing, the environment layer and the deployment checks all read this table.
using DistTrain.Protos.Cli;
using DistTrain.Protos.Security;

namespace DistTrain.Worker;

public static class WorkerCli
{
    public const string Program = "DistTrain.Worker";

    public static readonly IReadOnlyList<CliOption> Options =
    [
        new("--coordinator", "worker:coordinator", "the coordinator's URL, e.g. http://coordinator:5100", "URL"),
        new("--port", "worker:port", "port to serve on (0 = any free port; the bound one is registered)", "N"),
        new("--host", "worker:host", "interface to bind, and the host name registered unless --advertise says otherwise (default 127.0.0.1)", "HOST"),
        new("--advertise", "worker:advertise", "host name or address to register when it differs from --host", "HOST"),
        new("--data", "worker:data", "this machine's copy of the data (else the coordinator streams it once)", "PATH"),
        new("--threads", "worker:threads", "compute threads (0 = all cores)", "N"),
        new("--cache-dir", "worker:cacheDir", "where datasets received from the coordinator are cached", "DIR"),
        new("--max-message-bytes", "worker:maxMessageBytes", "largest gRPC message accepted or sent (default 64 MiB)", "N"),
        new("--max-dataset-bytes", "worker:maxDatasetBytes", "largest dataset accepted from the coordinator (default 4 GiB)", "N"),
        new("--register-timeout", "worker:registerTimeoutSeconds", "how long the first registration keeps trying, seconds (default 120)", "S"),
        new("--shared-memory", "worker:sharedMemory", "accept the coordinator's shared-memory transport when on its machine (true|false)", "BOOL"),
        new("--shared-memory-dir", "worker:sharedMemoryDir", "the only directory whose coordinator files shared memory may use (default /dev/shm)", "DIR"),
        new("--cpus", "worker:cpus", "compute-thread CPUs: auto (as the coordinator assigns), off, or a list like 0-3", "LIST"),
        new("--name", "worker:name", "name used in logs (default: the registered id)", "NAME"),
        new("--serve-forever", "worker:serveForever", "when a run ends, keep serving and register with the next coordinator (default: exit 0)", null),
        .. SecurityOptions.Options,
    ];

    public static readonly IReadOnlyList<CliCommand> Commands =
    [
        new("", "DistTrain worker: computes shard gradients for a coordinator until the run ends", Options),
    ];

    /// <summary>Parses the worker's command line; values it lacks come from <paramref name="environment"/>.</summary>
    public static ParsedCommandLine Parse(string[] args, Microsoft.Extensions.Configuration.IConfiguration environment) =>
        CliParser.Parse(Program, Commands, args, environment);
}

// The option table of `disttrain`: every flag of every command, with its configuration key and therefore its
// DISTTRAIN_ variable. Help, parsing, the environment layer and the deployment checks all read this one table.
using DistTrain.Protos.Cli;
using DistTrain.Protos.Security;

namespace DistTrain.Coordinator.Cli;

public static class CoordinatorOptions
{
    public const string Program = "disttrain";

    private static CliOption Config(string name, string key, string description, string? valueName = "VALUE") =>
        new(name, key, description, valueName, InConfigFile: true);

    public static readonly CliOption ConfigFile = new("--config", "config", "training config (JSON): model, data, optimizer, schedule, training", "FILE");
    public static readonly CliOption Data = Config("--data", "data:path", "data: an IDX directory or a CSV file (overrides data.path)", "PATH");
    public static readonly CliOption Threads = Config("--threads", "training:threads", "compute threads (0 = all cores); with remote workers, the threads of the coordinator's optimizer step", "N");
    public static readonly CliOption Model = new("--model", "weights", "trained weights (safetensors) as `train --save` writes them", "FILE");

    /// <summary>The settings of a training config that a flag can override.</summary>
    public static readonly IReadOnlyList<CliOption> TrainingOverrides =
    [
        Data,
        Config("--epochs", "training:epochs", "epochs to train", "N"),
        Config("--batch-size", "training:batchSize", "samples per mini-batch", "N"),
        Config("--shard-size", "training:shardSize", "samples per shard, the unit of work and of the reduction tree", "N"),
        Config("--lr", "optimizer:learningRate", "learning rate", "X"),
        Config("--seed", "training:seed", "seed of initialisation and shuffling", "N"),
        Threads,
        Config("--wire", "training:wire", "weights and gradient sums as float32 or bf16 (rounded in local mode too)", "float32|bf16"),
        Config("--clip-norm", "training:clipNorm", "clip the averaged gradient to this global L2 norm (0 = off)", "X"),
        Config("--save", "training:save", "write the final weights here (safetensors)", "FILE"),
        Config("--init", "training:init", "start from these weights (safetensors, e.g. written by PyTorch)", "FILE"),
        Config("--metrics-out", "training:metricsOut", "write one JSON object per epoch here", "FILE"),
        Config("--step-log", "training:stepLog", "write who computed which shards, one JSON object per step", "FILE"),
        Config("--checkpoint-dir", "training:checkpointDir", "write checkpoints here (atomically)", "DIR"),
        Config("--checkpoint-every", "training:checkpointEvery", "checkpoint every N steps (0 = at each epoch end)", "N"),
        Config("--resume", "training:resume", "continue from the newest checkpoint in --checkpoint-dir", null),
    ];

    public static readonly IReadOnlyList<CliOption> Cluster =
    [
        new("--listen", "cluster:listen", "serve the coordinator here and wait for remote workers, e.g. http://0.0.0.0:5100", "URL"),
        new("--expect-workers", "cluster:expectWorkers", "remote workers to wait for", "N"),
        new("--workers", "cluster:workers", "start N in-process workers over gRPC on 127.0.0.1 instead", "N"),
        new("--min-workers", "cluster:minWorkers", "ready workers enough to start when some expected ones were refused", "N"),
        new("--wait-seconds", "cluster:waitSeconds", "how long to wait for the expected workers (default 120)", "S"),
        new("--compute-timeout", "cluster:computeTimeout", "deadline of one gradient request, seconds (default 120)", "S"),
        new("--cache-dir", "cluster:cacheDir", "dataset cache of in-process workers", "DIR"),
        new("--wait-for-workers", "cluster:waitForWorkers", "how long a run with no ready worker left waits for one, seconds (default 0: fail)", "S"),
        new("--heartbeat-timeout", "cluster:heartbeatTimeout", "a worker silent this long is lost, seconds (default 10)", "S"),
        new("--max-workers", "cluster:maxWorkers", "workers the registry holds at most; new addresses beyond are refused (default 256)", "N"),
        new("--forget-after", "cluster:forgetAfter", "forget a lost or refused worker silent this long, seconds (default 600)", "S"),
        new("--shared-memory", "cluster:sharedMemory", "directory for the same-host transport, or off (default /dev/shm)", "DIR|off"),
        new("--weights-transfer", "cluster:weightsTransfer",
            "how gRPC workers get each step's weights: fetched from the coordinator, in the request, or auto (fetched above 768 KiB)", "auto|fetch|push"),
        new("--tcp-link", "cluster:tcpLink",
            "steps of workers outside the shared memory over a TCP link of their own (auto; TLS when the coordinator serves TLS) or over gRPC calls (off)", "auto|off"),
        new("--tcp-link-port", "cluster:tcpLinkPort", "port of the TCP step link (default 0: any free port; workers learn it in Prepare)", "N"),
        new("--bind-cpus", "cluster:bindCpus", "give each same-host worker CPUs of its own: auto or off", "auto|off"),
        new("--gradient-outlier-factor", "cluster:gradientOutlierFactor",
            "log a block whose gradient norm per shard exceeds X times the step's median (default 0: off)", "X"),
        .. SecurityOptions.Options,
    ];

    public static readonly IReadOnlyList<CliOption> Dashboard =
    [
        new("--dashboard-port", "dashboard:port", "dashboard port (default 8080, 0 = any free port)", "N"),
        new("--dashboard-bind", "dashboard:bind", "dashboard address (default 127.0.0.1: it has no authentication)", "ADDR"),
        new("--no-dashboard", "dashboard:off", "serve no dashboard", null),
        new("--keep-dashboard", "dashboard:keep", "after the run, serve its final state until Ctrl+C", null),
        new("--log-json", "log:json", "log records as JSON on stderr", null),
        new("--grad-vanish-below", "dashboard:gradVanishBelow", "alert when a layer's gradient norm falls below (default 1e-7)", "X"),
        new("--grad-explode-above", "dashboard:gradExplodeAbove", "alert when a layer's gradient norm rises above (default 1e3)", "X"),
    ];

    private static readonly IReadOnlyList<CliOption> TrainOptions =
    [
        ConfigFile, .. TrainingOverrides,
        new("--quiet", "log:quiet", "no progress bar", null),
        .. Cluster, .. Dashboard,
    ];

    public static readonly CliCommand Train = new("train",
        "train a model: locally, with --workers N in-process workers, or with remote workers (--listen, --expect-workers)", TrainOptions);

    public static readonly CliCommand BenchDistributed = new("bench-distributed",
        "measure distributed training: samples/s, step times, bytes per step per worker", TrainOptions);

    public static readonly CliCommand Evaluate = new("evaluate", "loss and accuracy of saved weights on the config's test set",
        [Model, ConfigFile, Data, Threads]);

    public static readonly CliCommand Predict = new("predict",
        "predicted class and class probabilities for every row of an IDX or CSV file",
        [
            Model, ConfigFile,
            new("--input", "predict:input", "raw samples: an IDX images file (labels beside it are used when found) or a CSV file", "FILE"),
            new("--output", "predict:output", "write the predictions as CSV here (default: standard output)", "FILE"),
            Data, Threads,
        ]);

    public static readonly CliCommand Export = new("export", "write an ONNX model (preprocessing, layers, logits and probabilities)",
        [Model, ConfigFile, new("--onnx", "export:onnx", "the ONNX file to write", "FILE"), Data]);

    public static readonly CliCommand Bench = new("bench", "measure GEMM and convolution GFLOP/s and training samples/s",
        [
            ConfigFile, Data,
            Config("--epochs", "training:epochs", "epochs per measured run (default 3)", "N"),
            new("--threads", "bench:threads", "thread counts to measure, e.g. 1,2", "LIST"),
            new("--repetitions", "bench:repetitions", "GEMM repetitions per shape (default 5)", "N"),
            new("--json", "bench:json", "write the results as JSON here", "FILE"),
            new("--skip-gemm", "bench:skipGemm", "skip the GEMM measurements", null),
            new("--skip-conv", "bench:skipConv", "skip the convolution and pooling measurements", null),
            new("--skip-training", "bench:skipTraining", "skip the training measurements", null),
        ]);

    public static readonly CliCommand HealthCheck = new(Protos.HealthEndpoint.Command,
        "exit 0 when a node's /healthz answers (container health checks)", [], Argument: "URL");

    public static readonly CliCommand Root = new("",
        "DistTrain: synchronous data-parallel training of neural networks; bit-identical whatever the number of workers", []);

    public static readonly IReadOnlyList<CliCommand> Commands = [Root, Train, Evaluate, Predict, Export, Bench, BenchDistributed, HealthCheck];

    /// <summary>Every environment variable `disttrain` reads by name (config settings are matched by section too).</summary>
    public static IEnumerable<CliOption> All => Commands.SelectMany(c => c.Options).Distinct();
}

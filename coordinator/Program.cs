// The disttrain command: train (local or distributed), evaluate, bench, healthcheck. User errors print one line and exit 2.
using DistTrain.Coordinator.Cli;
using DistTrain.Core;
using DistTrain.Protos;

const string Usage = """
    usage: disttrain <command> [options]
      train     --config FILE [--data PATH] [--epochs N] [--batch-size N] [--shard-size N] [--lr X] [--seed N]
                [--threads N] [--clip-norm X] [--save FILE.safetensors] [--init FILE.safetensors]
                [--metrics-out FILE.jsonl] [--step-log FILE.jsonl] [--checkpoint-dir DIR] [--checkpoint-every N]
                [--resume] [--quiet]
                [--dashboard-port N (default 8080, 0 = any free port)] [--dashboard-bind ADDR (default 127.0.0.1)]
                [--no-dashboard] [--log-json] [--grad-vanish-below X (1e-7)] [--grad-explode-above X (1e3)]
                distributed: --listen URL --expect-workers N [--min-workers M] [--wait-seconds S]
                             [--compute-timeout S] | --workers N (in-process workers over gRPC on 127.0.0.1)
                security:    [--token-file FILE] [--tls-cert PEM --tls-key PEM] [--tls-ca PEM] [--tls-mutual true]
                             (or DISTTRAIN_TOKEN_FILE, DISTTRAIN_TOKEN, DISTTRAIN_TLS_*; see docs/deployment.md)
      bench-distributed  --config FILE (--workers N | --listen URL --expect-workers N) [train options]
      evaluate  --model FILE.safetensors --config FILE [--data PATH]
      bench     [--config FILE] [--epochs N] [--threads 1,2] [--repetitions N] [--json FILE] [--skip-gemm] [--skip-training]
      healthcheck URL   exits 0 when a node's /healthz answers (container health checks)
    """;

if (args is [HealthEndpoint.Command, .. var probe]) return await HealthEndpoint.ProbeAsync(probe);
if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 2 : 0;
}

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

try
{
    return args[0] switch
    {
        "train" => await TrainCommand.RunAsync(
            CommandLine.Parse("train", args.AsSpan(1), TrainCommand.Valued, TrainCommand.Switches), cancellation.Token),
        "bench-distributed" => await DistributedBench.RunAsync(
            CommandLine.Parse("bench-distributed", args.AsSpan(1), TrainCommand.Valued, TrainCommand.Switches), cancellation.Token),
        "evaluate" => EvaluateCommand.Run(
            CommandLine.Parse("evaluate", args.AsSpan(1), EvaluateCommand.Valued, EvaluateCommand.Switches)),
        "bench" => await BenchCommand.RunAsync(
            CommandLine.Parse("bench", args.AsSpan(1), BenchCommand.Valued, BenchCommand.Switches), cancellation.Token),
        _ => throw new UserInputException($"unknown command '{args[0]}'; expected train, evaluate, bench, bench-distributed, healthcheck (see disttrain --help)"),
    };
}
catch (UserInputException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
{
    Console.Error.WriteLine("interrupted (a checkpoint was written if --checkpoint-dir is set; continue with --resume)");
    return 130;
}

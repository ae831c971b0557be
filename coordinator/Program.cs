// The disttrain command: train (local or distributed), evaluate, predict, export, bench, healthcheck. Options, help
// and their DISTTRAIN_ variables come from one table (CoordinatorOptions); user errors print one line and exit 2.
using DistTrain.Coordinator.Cli;
using DistTrain.Core;
using DistTrain.Protos;

if (args is [HealthEndpoint.Command, .. var probe] && !probe.Any(a => a is "--help" or "-h" or "-?"))
    return await HealthEndpoint.ProbeAsync(probe);

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

try
{
    var line = CliParser.Parse(CoordinatorOptions.Program, CoordinatorOptions.Commands, args, CommandOptions.ProcessEnvironment());
    if (line.IsParserAction) return line.RunParserAction();
    var options = line.Options!;
    return line.Command!.Name switch
    {
        "train" => await TrainCommand.RunAsync(options, cancellation.Token),
        "bench-distributed" => await DistributedBench.RunAsync(options, cancellation.Token),
        "evaluate" => EvaluateCommand.Run(options),
        "predict" => PredictCommand.Run(options),
        "export" => ExportCommand.Run(options),
        "bench" => await BenchCommand.RunAsync(options, cancellation.Token),
        var other => throw new UserInputException($"{CoordinatorOptions.Program}: '{other}' has no implementation"),
    };
}
catch (UserInputException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException)
{
    // A file the run writes as it goes (metrics, step log) on a full or failing disk: one line, not a stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (OutOfMemoryException)
{
    Console.Error.WriteLine("error: out of memory: the model, batch or data is larger than this machine can hold");
    return 2;
}
catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
{
    Console.Error.WriteLine("interrupted (a checkpoint was written if --checkpoint-dir is set; continue with --resume)");
    return 130;
}

// The disttrain command: train (local or distributed), evaluate, predict, export, bench, healthcheck. Options, help
// and their DISTTRAIN_ variables come from one table (CoordinatorOptions); user errors print one line and exit 2.
// The long-running commands (train, bench, bench-distributed) stop in order on SIGINT or SIGTERM (Interruption).
using DistTrain.Coordinator.Cli;
using DistTrain.Core;
using DistTrain.Protos;

if (args is [HealthEndpoint.Command, .. var probe] && !probe.Any(a => a is "--help" or "-h" or "-?"))
    return await HealthEndpoint.ProbeAsync(probe);

Interruption? interruption = null;
try
{
    var line = CliParser.Parse(CoordinatorOptions.Program, CoordinatorOptions.Commands, args, CommandOptions.ProcessEnvironment());
    if (line.IsParserAction) return line.RunParserAction();
    var options = line.Options!;
    // The other commands are short and watch no token: a signal ends them at once, as it would any program.
    if (line.Command!.Name is "train" or "bench" or "bench-distributed") interruption = Interruption.Register(Console.Error);
    return line.Command!.Name switch
    {
        "train" => await TrainCommand.RunAsync(options, interruption!),
        "bench-distributed" => await DistributedBench.RunAsync(options, interruption!.Token),
        "evaluate" => EvaluateCommand.Run(options),
        "predict" => PredictCommand.Run(options),
        "export" => ExportCommand.Run(options),
        "bench" => await BenchCommand.RunAsync(options, interruption!.Token),
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
catch (OperationCanceledException) when (interruption?.Requested == true)
{
    Console.Error.WriteLine($"interrupted by {interruption.SignalName}");
    return interruption.ExitCode;
}
finally
{
    interruption?.Dispose();
}

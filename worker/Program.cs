// Worker entry point: `DistTrain.Worker --coordinator URL [--port N] [--data PATH] [--threads N] …` (see --help)
// serves shard gradients to the coordinator until its run ends, or until SIGTERM/SIGINT (exit 0 either way;
// --serve-forever waits for the next coordinator instead); `DistTrain.Worker healthcheck URL` probes a node's
// /healthz. Exit 1: it never registered within --register-timeout, or was refused. Bad flags print one line and exit 2.
using DistTrain.Core;
using DistTrain.Protos;
using DistTrain.Protos.Cli;
using DistTrain.Worker;

if (args is [HealthEndpoint.Command, .. var probe] && !probe.Any(a => a is "--help" or "-h" or "-?"))
    return await HealthEndpoint.ProbeAsync(probe);
try
{
    var line = WorkerCli.Parse(args, CommandOptions.ProcessEnvironment());
    if (line.IsParserAction) return line.RunParserAction();
    var app = WorkerHost.Build(line.Options!);
    await app.RunAsync();
    return Environment.ExitCode;
}
catch (UserInputException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (IOException e)
{
    // Kestrel reports a port already in use this way.
    Console.Error.WriteLine($"error: cannot start the worker server: {e.Message}");
    return 2;
}

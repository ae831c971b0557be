// --serve-forever is a switch of the worker's option table: the flag, or DISTTRAIN_WORKER__SERVEFOREVER with any value
// the table reads as true ("1", "yes", "on", "true") or false, reaches WorkerOptions; unset, the worker exits after a run.
using DistTrain.Protos.Cli;
using DistTrain.Worker;
using Microsoft.Extensions.DependencyInjection;

namespace DistTrain.Tests.Lifecycle;

public sealed class ServeForeverSettingTests
{
    private static async Task<bool> ServeForever(string[] flags, string? variable)
    {
        var environment = variable is null ? [] : new[] { KeyValuePair.Create("DISTTRAIN_WORKER__SERVEFOREVER", variable) };
        var line = WorkerCli.Parse(["--coordinator", "http://127.0.0.1:1", .. flags], CommandOptions.EnvironmentFrom(environment));
        await using var app = WorkerHost.Build(line.Options!, quiet: true);
        return app.Services.GetRequiredService<WorkerOptions>().ServeForever;
    }

    [Theory]
    [InlineData(new string[0], null, false)]
    [InlineData(new[] { "--serve-forever" }, null, true)]
    [InlineData(new string[0], "1", true)]
    [InlineData(new string[0], "yes", true)]
    [InlineData(new string[0], "true", true)]
    [InlineData(new string[0], "0", false)]
    [InlineData(new string[0], "false", false)]
    public async Task TheFlagOrItsVariableReachesTheWorkersOptions(string[] flags, string? variable, bool expected) =>
        Assert.Equal(expected, await ServeForever(flags, variable));
}

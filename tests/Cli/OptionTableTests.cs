// The option tables against the programs as built: --help lists every option with its DISTTRAIN_ variable, every
// option the code names is in a table, a flag wins over its variable, and mistakes are one line with a suggestion.
using System.Text.RegularExpressions;
using DistTrain.Coordinator.Cli;
using DistTrain.Protos.Cli;
using DistTrain.Tests.Infrastructure;
using DistTrain.Worker;
using Microsoft.Extensions.Configuration;

namespace DistTrain.Tests.Cli;

public sealed partial class OptionTableTests
{
    private static readonly string Root = Distributed.ProcessHarness.RepoRoot;

    public static TheoryData<string> CoordinatorCommands() => [.. CoordinatorOptions.Commands.Where(c => c.Name.Length > 0).Select(c => c.Name)];

    [Theory]
    [MemberData(nameof(CoordinatorCommands))]
    public void CommandHelpListsEveryOptionWithItsVariable(string command)
    {
        var (code, stdout, stderr) = CliProcess.Run([command, "--help"]);
        Assert.True(code == 0, stderr);
        var table = CoordinatorOptions.Commands.Single(c => c.Name == command);
        foreach (var option in table.Options.Where(o => o.Name is not null))
            Assert.Matches($@"(?m)^\s+{Regex.Escape(option.Name!)}\b.*\[env: {Regex.Escape(option.EnvironmentVariable)}[;\]]", stdout);
    }

    [Fact]
    public void ProgramHelpListsTheCommands()
    {
        foreach (string help in new[] { "--help", "-h" })
        {
            var (code, stdout, stderr) = CliProcess.Run([help]);
            Assert.True(code == 0, stderr);
            foreach (var command in CoordinatorOptions.Commands.Where(c => c.Name.Length > 0))
                Assert.Matches($@"(?m)^\s+{Regex.Escape(command.Name)}\b", stdout);
        }
    }

    [Fact]
    public void WorkerHelpListsEveryOptionWithItsVariable()
    {
        using var worker = CliProcess.Start("DistTrain.Worker.dll", ["--help"]);
        Assert.True(worker.WaitForExit(TimeSpan.FromMinutes(1)) == 0, worker.Stderr);
        foreach (var option in WorkerCli.Options.Where(o => o.Name is not null))
            Assert.Matches($@"(?m)^\s+{Regex.Escape(option.Name!)}\b.*\[env: {Regex.Escape(option.EnvironmentVariable)}\]", worker.Stdout);
    }

    [Fact]
    public void VersionIsPrinted()
    {
        var (code, stdout, _) = CliProcess.Run(["--version"]);
        Assert.Equal(0, code);
        Assert.Matches(@"^\d+\.\d+\.\d+", stdout.Trim());
    }

    [Theory]
    [InlineData(new[] { "train", "--epoch", "3" }, "error: train: unknown option '--epoch'; did you mean --epochs? (see disttrain train --help)")]
    [InlineData(new[] { "trian" }, "error: disttrain: unknown command 'trian'; did you mean train? (see disttrain --help)")]
    [InlineData(new[] { "evaluate", "--modle", "w.safetensors" }, "error: evaluate: unknown option '--modle'; did you mean --model? (see disttrain evaluate --help)")]
    [InlineData(new[] { "evaluate", "--model" }, "error: evaluate: Required argument missing for option: '--model' (see disttrain evaluate --help)")]
    public void MistakesAreOneLineWithExitCode2(string[] args, string expected)
    {
        var (code, stdout, stderr) = CliProcess.Run(args);
        Assert.Equal(2, code);
        Assert.Equal(expected, stderr.Trim());
        Assert.Empty(stdout.Trim());
    }

    [Fact]
    public void WorkerMistakeIsOneLineWithExitCode2()
    {
        using var worker = CliProcess.Start("DistTrain.Worker.dll", ["--cordinator", "http://127.0.0.1:1"]);
        Assert.Equal(2, worker.WaitForExit(TimeSpan.FromMinutes(1)));
        Assert.Equal("error: DistTrain.Worker: unknown option '--cordinator'; did you mean --coordinator? (see DistTrain.Worker --help)", worker.Stderr.Trim());
    }

    [Fact]
    public void CompletionScriptAsksTheProgramAndTheProgramCompletesOptions()
    {
        var (code, script, _) = CliProcess.Run(["completion", "bash"]);
        Assert.Equal(0, code);
        Assert.Contains("complete -F _disttrain_complete disttrain", script);
        Assert.Contains("[suggest:", script);
        var (suggestCode, suggestions, _) = CliProcess.Run(["[suggest:20]", "disttrain train --ep"]);
        Assert.Equal(0, suggestCode);
        Assert.Equal(["--epochs"], suggestions.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [Fact]
    public void AFlagWinsOverItsVariableWhichWinsOverNothing()
    {
        var table = CoordinatorOptions.Train.Options;
        var environment = CommandOptions.EnvironmentFrom(new Dictionary<string, string>
        {
            ["DISTTRAIN_CLUSTER__LISTEN"] = "http://0.0.0.0:5100",
            ["DISTTRAIN_DASHBOARD__PORT"] = "9000",
            ["DISTTRAIN_LOG__QUIET"] = "true",
        });
        var options = new CommandOptions("train", table, new Dictionary<string, string?> { ["--dashboard-port"] = "9100" }, environment);
        Assert.Equal("http://0.0.0.0:5100", options.Get("--listen"));
        Assert.False(options.FromCommandLine("--listen"));
        Assert.Equal(9100, options.GetInt("--dashboard-port"));
        Assert.True(options.Has("--quiet"));
        Assert.Null(options.Get("--workers"));
        Assert.False(options.Has("--no-dashboard"));
        // Reading an option the command's table lacks is a bug, caught at the first read.
        var e = Assert.Throws<InvalidOperationException>(() => options.Get("--onnx"));
        Assert.Equal("train reads --onnx, which is not in its option table", e.Message);
    }

    [Fact]
    public void ARepeatedOptionTakesItsLastValueAndAStrayArgumentIsAnError()
    {
        var none = CommandOptions.EnvironmentFrom([]);
        var line = CliParser.Parse(CoordinatorOptions.Program, CoordinatorOptions.Commands,
            ["train", "--epochs", "3", "--resume", "--epochs", "5", "--resume", "false"], none);
        Assert.Equal(5, line.Options!.GetInt("--epochs"));
        Assert.False(line.Options.Has("--resume"));
        var e = Assert.Throws<DistTrain.Core.UserInputException>(() =>
            CliParser.Parse(CoordinatorOptions.Program, CoordinatorOptions.Commands, ["train", "--epochs", "3", "4"], none));
        Assert.Equal("train: unknown argument '4' (see disttrain train --help)", e.Message);
    }

    [Fact]
    public void VariablesAreTheKeysAsAddEnvironmentVariablesMapsThem()
    {
        // The real provider, on variables of this process named after every row of both tables. They carry a prefix of
        // this test's own (the provider strips any prefix the same way), so tests running beside it that read the
        // process's DISTTRAIN_ variables never see them.
        var rows = CoordinatorOptions.All.Concat(WorkerCli.Options).DistinctBy(o => o.Key).ToList();
        string prefix = $"DISTTRAINTEST{Environment.ProcessId}{Guid.NewGuid():N}_";
        string Name(CliOption row) => prefix + row.EnvironmentVariable[CliOption.Prefix.Length..];
        Assert.All(rows, r => Assert.StartsWith(CliOption.Prefix, r.EnvironmentVariable));
        try
        {
            foreach (var row in rows) Environment.SetEnvironmentVariable(Name(row), "value of " + row.Key);
            var configuration = new ConfigurationBuilder().AddEnvironmentVariables(prefix).Build();
            foreach (var row in rows) Assert.Equal("value of " + row.Key, configuration[row.Key]);
        }
        finally
        {
            foreach (var row in rows) Environment.SetEnvironmentVariable(Name(row), null);
        }
    }

    [Fact]
    public void EveryOptionTheCodeNamesIsInAnOptionTable()
    {
        // Every "--flag" literal in the programs' sources; the tables themselves are the only definitions.
        var coordinator = CoordinatorOptions.All.Select(o => o.Name).ToHashSet();
        var worker = WorkerCli.Options.Select(o => o.Name).ToHashSet();
        var missing = new List<string>();
        foreach (var (directory, known) in new[] { ("coordinator", coordinator), ("worker", worker), ("protos", worker) })
            foreach (string file in Directory.EnumerateFiles(Path.Combine(Root, directory), "*.cs", SearchOption.AllDirectories)
                         .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
                foreach (Match m in File.ReadLines(file).Where(l => !l.TrimStart().StartsWith("//", StringComparison.Ordinal))
                             .SelectMany(l => FlagLiteral().Matches(l)))
                {
                    string flag = m.Groups[1].Value;
                    // The coordinator starts in-process workers with the worker's own flags.
                    bool ok = known.Contains(flag) || directory == "coordinator" && worker.Contains(flag) && file.EndsWith("DistributedCluster.cs", StringComparison.Ordinal)
                        || flag is "--help" or "--version";
                    if (!ok) missing.Add($"{Path.GetRelativePath(Root, file)}: {flag}");
                }
        Assert.True(missing.Count == 0, "options named in code but not in a table:\n" + string.Join('\n', missing));
        Assert.Contains("--epochs", coordinator); // the scan has something to compare against
    }

    [Fact]
    public void ConfigFileRowsNameRealConfigSettings()
    {
        foreach (var row in CoordinatorOptions.All.Where(o => o.InConfigFile))
            Assert.True(CoordinatorEnvironment.Reads(row.EnvironmentVariable) && CoordinatorEnvironment.ConfigKey(row.EnvironmentVariable) is not null,
                $"{row.Name} names {row.Key}, which is not a config setting");
    }

    [GeneratedRegex(@"""(--[a-z][a-z0-9-]*)""")]
    private static partial Regex FlagLiteral();
}

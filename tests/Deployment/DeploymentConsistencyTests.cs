// docker-compose.yml and the Dockerfile against the programs as built: every DISTTRAIN_ variable set is one the
// program reads (the programs' own registries, which are what read them), every command parses with the program's
// real flag parser, health checks probe the ports the services serve, and the image holds what the commands name.
using System.Text.RegularExpressions;
using DistTrain.Coordinator.Cli;
using DistTrain.Protos;
using DistTrain.Protos.Cli;
using DistTrain.Protos.Security;
using DistTrain.Worker;
using YamlDotNet.RepresentationModel;

namespace DistTrain.Tests.Deployment;

public sealed partial class DeploymentConsistencyTests
{
    private const string CoordinatorDll = "/app/disttrain.dll", WorkerDll = "/app/DistTrain.Worker.dll";
    private static readonly string Root = Distributed.ProcessHarness.RepoRoot;
    private readonly ComposeFile _compose = ComposeFile.Load(ComposeFile.DefaultPath);

    private IEnumerable<ComposeService> Services(string dll) => _compose.Services.Values.Where(s => s.Command.Contains(dll));

    [Fact]
    public void EveryServiceRunsOneOfTheTwoProgramsOfTheImage()
    {
        Assert.NotEmpty(Services(CoordinatorDll));
        Assert.NotEmpty(Services(WorkerDll));
        foreach (var service in _compose.Services.Values)
        {
            Assert.True(service.Command is ["dotnet", CoordinatorDll or WorkerDll, ..], $"{service.Name}: command {string.Join(' ', service.Command)}");
            Assert.Equal("${IMAGE:-disttrain:latest}", ((YamlScalarNode)ComposeFile.Child(service.Node, "image")!).Value);
            Assert.NotNull(ComposeFile.Child(service.Node, "restart"));
        }
    }

    [Fact]
    public void EveryDisttrainVariableIsOneTheProgramReads()
    {
        foreach (var (dll, reads) in new (string, Func<string, bool>)[] { (CoordinatorDll, CoordinatorEnvironment.Reads), (WorkerDll, WorkerEnvironment.Reads) })
            foreach (var service in Services(dll))
                foreach (var name in service.Environment.Keys.Where(k => k.StartsWith("DISTTRAIN_", StringComparison.Ordinal)))
                    Assert.True(reads(name), $"{service.Name} sets {name}, which {dll} does not read");
        // The registries are not vacuous: they refuse near misses.
        Assert.False(CoordinatorEnvironment.Reads("DISTTRAIN_TRAINING__EPOCH"));
        Assert.False(WorkerEnvironment.Reads("DISTTRAIN_WORKER__COORDINATORS"));
        Assert.True(CoordinatorEnvironment.Reads("DISTTRAIN_MODEL__LAYERS__0__UNITS"));
    }

    [Fact]
    public void TheSecretComesFromADockerSecretNeverFromTheFile()
    {
        var declared = ((YamlMappingNode)ComposeFile.Child(_compose.Root, "secrets")!).Children.Keys.Select(k => ((YamlScalarNode)k).Value).ToList();
        foreach (var service in _compose.Services.Values)
        {
            Assert.False(service.Environment.ContainsKey(SecurityOptions.TokenVariable), $"{service.Name} puts the secret itself in the compose file");
            string file = service.Environment[SecurityOptions.TokenFileVariable];
            Assert.StartsWith("/run/secrets/", file);
            Assert.Contains(Path.GetFileName(file), service.Secrets);
            Assert.Contains(Path.GetFileName(file), declared);
        }
    }

    [Fact]
    public void CommandsParseWithTheProgramsOwnFlagParsers()
    {
        foreach (var service in Services(CoordinatorDll))
        {
            Assert.Equal("train", service.Command[2]);
            var line = CliParser.Parse(CoordinatorOptions.Program, CoordinatorOptions.Commands, [.. service.Command.Skip(2)],
                CommandOptions.EnvironmentFrom(service.Environment));
            var flags = line.Options!;
            // The coordinator must accept the config with exactly the variables compose sets.
            var config = ConfigLoader.Load(Path.Combine(Root, flags.Require("--config").Replace("/app/", "")), flags, service.Environment);
            Assert.Equal(service.Environment["DISTTRAIN_DATA__PATH"], config.Data.Path);
        }
        foreach (var service in Services(WorkerDll))
        {
            var line = WorkerCli.Parse([.. service.Command.Skip(2)], CommandOptions.EnvironmentFrom(service.Environment));
            Assert.False(line.IsParserAction, $"{service.Name}: {string.Join(' ', service.Command)}");
            Assert.Equal(service.Environment[WorkerEnvironment.Prefix + "COORDINATOR"], line.Options!.Get("--coordinator"));
        }
    }

    [Fact]
    public void HealthChecksProbeThePortEachServiceServes()
    {
        foreach (var service in _compose.Services.Values)
        {
            Assert.True(service.HealthCheck is ["CMD", "dotnet", CoordinatorDll or WorkerDll, HealthEndpoint.Command, _],
                $"{service.Name}: health check {string.Join(' ', service.HealthCheck)}");
            var probe = new Uri(service.HealthCheck[4]);
            Assert.Equal(HealthEndpoint.Path, probe.AbsolutePath);
            Assert.True(NodeSecurityIsLoopback(probe.Host), $"{service.Name} probes {probe.Host}; the probe runs inside the container");
            int served = service.Command.Contains(CoordinatorDll)
                ? new Uri(service.Command[service.Command.ToList().IndexOf("--listen") + 1]).Port
                : int.Parse(service.Environment[WorkerEnvironment.Prefix + "PORT"]);
            Assert.Equal(served, probe.Port);
        }
    }

    [Fact]
    public void WorkersFindTheCoordinatorAndTheDataIsReadOnly()
    {
        var coordinator = Assert.Single(Services(CoordinatorDll));
        int port = new Uri(coordinator.Command[coordinator.Command.ToList().IndexOf("--listen") + 1]).Port;
        var worker = _compose.Services["worker"];
        Assert.Equal($"http://{coordinator.Name}:{port}", worker.Environment[WorkerEnvironment.Prefix + "COORDINATOR"]);
        Assert.Equal("0.0.0.0", worker.Environment[WorkerEnvironment.Prefix + "HOST"]);
        foreach (var service in _compose.Services.Values)
            Assert.Contains(service.Volumes, v => v.StartsWith("fashion-mnist:", StringComparison.Ordinal) && v.EndsWith(":ro", StringComparison.Ordinal));
        // A worker loads only its own --data (never a path from the network), so each names the mounted copy.
        foreach (var name in new[] { "worker", "remote-worker" })
            Assert.Equal("/data/fashion-mnist", _compose.Services[name].Environment[WorkerEnvironment.Prefix + "DATA"]);
    }

    [Fact]
    public void DockerfileBuildsBothProgramsAndRunsThemAsAnUnprivilegedUser()
    {
        string dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        var defaults = BuildArgument().Matches(dockerfile).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        Assert.Equal("mcr.microsoft.com/dotnet/sdk:10.0", defaults["SDK_IMAGE"]);
        Assert.Equal("mcr.microsoft.com/dotnet/aspnet:10.0", defaults["RUNTIME_IMAGE"]);
        // The runtime stage comes first, so `--target runtime-base` builds without the SDK even on the classic builder
        // (which builds every stage before the target); the last stage, the default, runs what the SDK stage built.
        var stages = From().Matches(dockerfile).Select(m => (m.Groups[1].Value, m.Groups[2].Value)).ToList();
        Assert.Equal([("${RUNTIME_IMAGE}", "runtime-base"), ("${SDK_IMAGE}", "build"), ("runtime-base", "runtime")], stages);
        Assert.Contains("COPY --from=build /app ./", dockerfile);
        foreach (var (project, dll) in new[] { ("coordinator/DistTrain.Coordinator.csproj", CoordinatorDll), ("worker/DistTrain.Worker.csproj", WorkerDll) })
        {
            Assert.Matches($@"dotnet publish {Regex.Escape(project)} .*-o /app", dockerfile);
            string assembly = AssemblyName().Match(File.ReadAllText(Path.Combine(Root, project))).Groups[1].Value;
            Assert.Equal(dll, $"/app/{assembly}.dll");
        }
        // The build settings the host's builds use, so the SDK stage builds the same programs.
        foreach (var settings in Directory.GetFiles(Root, "Directory.*").Select(Path.GetFileName))
            Assert.Matches($@"COPY .*\b{Regex.Escape(settings!)}\b.* \./", dockerfile);
        var user = User().Matches(dockerfile).Select(m => m.Groups[1].Value).Last();
        Assert.DoesNotMatch("^(root|0)$", user);
        Assert.Contains("COPY examples/ ./examples/", dockerfile);
        foreach (var service in Services(CoordinatorDll))
            Assert.True(File.Exists(Path.Combine(Root, service.Command[service.Command.ToList().IndexOf("--config") + 1].Replace("/app/", ""))));
        foreach (var port in new[] { "5100", "5101", "5102", "8080" }) Assert.Matches($@"EXPOSE .*\b{port}\b", dockerfile);
        string ignore = File.ReadAllText(Path.Combine(Root, ".dockerignore"));
        Assert.Contains("secrets/", ignore);
    }

    [Fact]
    public void ComposeUpEndsWithTheRunAndTheDocsShowTheCommandThatReturnsItsExitCode()
    {
        foreach (var service in Services(WorkerDll))
        {
            // A worker exits 0 when its run ends: "always" or "unless-stopped" would start it again and `up` would never end.
            Assert.Equal("on-failure", Scalar(service, "restart"));
            Assert.False(CliOption.IsTrue(service.Environment.GetValueOrDefault(WorkerEnvironment.Prefix + "SERVEFOREVER")),
                $"{service.Name} serves forever, so `up` would never end");
        }
        var coordinator = Assert.Single(Services(CoordinatorDll));
        // A crash is retried; a failed run (exit 1) would fail again, so not without end.
        Assert.Matches(@"^on-failure:\d+$", Scalar(coordinator, "restart"));
        // docker stop's SIGKILL comes after the coordinator's own bound on an orderly stop (checkpoint, workers told).
        var grace = Regex.Match(Scalar(coordinator, "stop_grace_period"), @"^(\d+)s$");
        Assert.True(grace.Success && TimeSpan.FromSeconds(int.Parse(grace.Groups[1].Value)) > Interruption.GracePeriod,
            $"stop_grace_period {Scalar(coordinator, "stop_grace_period")} must exceed {Interruption.GracePeriod.TotalSeconds}s");
        foreach (var doc in new[] { "README.md", "docs/deployment.md" })
            Assert.Contains($"--exit-code-from {coordinator.Name}", File.ReadAllText(Path.Combine(Root, doc)));
    }

    private static string Scalar(ComposeService service, string key) =>
        (ComposeFile.Child(service.Node, key) as YamlScalarNode)?.Value ?? "";

    [Fact]
    public void PublishedDockerfileAddsTheHostsProgramsToTheRuntimeStage()
    {
        string published = File.ReadAllText(Path.Combine(Root, "Dockerfile.published"));
        Assert.Equal([("${BASE}", "")], From().Matches(published).Select(m => (m.Groups[1].Value, m.Groups[2].Value)));
        Assert.Equal("disttrain-runtime-base", BuildArgument().Match(published).Groups[2].Value);
        Assert.Matches(@"(?m)^COPY \. \./$", published);
        // The runtime stage sets the directory the programs are copied into.
        Assert.Matches(@"(?ms)AS runtime-base$.*^WORKDIR /app$.*^FROM \$\{SDK_IMAGE\}", File.ReadAllText(Path.Combine(Root, "Dockerfile")));
    }

    [Fact]
    public void EveryVariableOfTheFileIsNamedInItsHeaderAndTheDeploymentGuide()
    {
        string header = File.ReadLines(ComposeFile.DefaultPath).TakeWhile(l => l.StartsWith('#')).Single(l => l.StartsWith("# Variables:", StringComparison.Ordinal));
        string guide = File.ReadAllText(Path.Combine(Root, "docs", "deployment.md"));
        var variables = ComposeFile.VariablesIn(ComposeFile.DefaultPath);
        Assert.NotEmpty(variables);
        foreach (var name in variables)
        {
            Assert.Matches($@"\b{name}\b", header);
            Assert.Contains($"`{name}`", guide);
        }
        // Compose v1 rejects a top-level `name:`; the project name comes from .env, which both versions read.
        Assert.Null(ComposeFile.Child(_compose.Root, "name"));
        Assert.Contains("COMPOSE_PROJECT_NAME=disttrain", File.ReadAllLines(Path.Combine(Root, ".env")));
    }

    private static bool NodeSecurityIsLoopback(string host) => NodeSecurity.IsLoopback(host);

    /// <summary>A stage: its base and, when named, its name.</summary>
    [GeneratedRegex(@"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", RegexOptions.Multiline)]
    private static partial Regex From();

    /// <summary>A build argument and its default.</summary>
    [GeneratedRegex(@"^ARG\s+(\w+)=(\S+)\s*$", RegexOptions.Multiline)]
    private static partial Regex BuildArgument();

    [GeneratedRegex(@"^USER\s+(\S+)", RegexOptions.Multiline)]
    private static partial Regex User();

    [GeneratedRegex(@"<AssemblyName>([^<]+)</AssemblyName>")]
    private static partial Regex AssemblyName();
}

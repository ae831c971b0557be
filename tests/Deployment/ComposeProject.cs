// The shipped docker-compose.yml as one Compose project on the local engine, under a name of its own
// (disttrain-test-PID-RANDOM): the images built for it carry the name too, so a test touches only what it created.
// Dispose removes its containers, networks, volumes and images, also after a failure; leftovers of a dead test
// process are removed when the next project starts, a concurrent run's are left alone.
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using DistTrain.Tests.Distributed;

namespace DistTrain.Tests.Deployment;

public sealed record ContainerState(string Service, string Name, string Status, int ExitCode, int RestartCount)
{
    public override string ToString() => $"{Name} ({Service}): {Status}, exit code {ExitCode}, restarted {RestartCount} time(s)";
}

public sealed partial class ComposeProject : IDisposable
{
    private const string Prefix = "disttrain-test-";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(2);
    private readonly IReadOnlyDictionary<string, string?> _environment;

    /// <param name="variables">
    /// The compose file's variables (WORKERS, EPOCHS, …) for every command of this project; IMAGE is the project's own.
    /// </param>
    public ComposeProject(IReadOnlyDictionary<string, string> variables)
    {
        RemoveLeftovers();
        Name = $"{Prefix}{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
        // Only what the test chose: a COMPOSE_FILE, COMPOSE_PROFILES or variable of the machine must not change the run.
        var fileVariables = ComposeFile.VariablesIn(ComposeFile.DefaultPath);
        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("COMPOSE_", StringComparison.Ordinal) || fileVariables.Contains(k))
            .ToDictionary(k => k, _ => (string?)null);
        foreach (var (name, value) in variables) environment[name] = value;
        environment["IMAGE"] = Image();
        _environment = environment;
    }

    public string Name { get; }

    /// <summary>The project's image tag: <paramref name="role"/> names one of several.</summary>
    public string Image(string role = "") => role.Length == 0 ? $"{Name}:latest" : $"{Name}-{role}:latest";

    /// <summary>
    /// `up` in the foreground, which ends by itself once every container has stopped. Ended is false when it had
    /// not after <paramref name="timeout"/>: the Compose process is then killed and the containers left to Dispose.
    /// </summary>
    public (bool Ended, int ExitCode, string Output) Up(TimeSpan timeout, params string[] args)
    {
        var (program, prefix) = DockerEngine.Compose!.Value;
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[.. prefix, .. ProjectArguments(Name), "up", .. args]) info.ArgumentList.Add(a);
        foreach (var (name, value) in _environment)
            if (value is null) info.Environment.Remove(name);
            else info.Environment[name] = value;
        var output = new StringBuilder();
        using var process = ProcessHarness.StartCapturing(info, output);
        bool ended = process.WaitForExit(timeout);
        if (!ended)
        {
            process.Kill();
            process.WaitForExit(10_000);
        }
        else process.WaitForExit(); // drains the redirected output
        return (ended, ended ? process.ExitCode : -1, ProcessHarness.Text(output));
    }

    /// <summary>Every container of the project, running or stopped.</summary>
    public IReadOnlyList<ContainerState> Containers()
    {
        var ids = Docker("ps", "--all", "--quiet", "--filter", $"label=com.docker.compose.project={Name}")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ids.Length == 0) return [];
        return [.. Docker(["inspect", "--format",
                "{{index .Config.Labels \"com.docker.compose.service\"}} {{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", .. ids])
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' '))
            .Select(f => new ContainerState(f[0], f[1].TrimStart('/'), f[2], int.Parse(f[3]), int.Parse(f[4])))
            .OrderBy(c => c.Name, StringComparer.Ordinal)];
    }

    /// <summary>A file out of a service's container (`docker cp` reads stopped containers and their volumes too).</summary>
    public byte[] CopyFrom(string service, string path, string scratchDirectory)
    {
        var container = Containers().First(c => c.Service == service);
        string local = Path.Combine(scratchDirectory, $"{service}-{Path.GetFileName(path)}");
        Docker("cp", $"{container.Name}:{path}", local);
        return File.ReadAllBytes(local);
    }

    /// <summary>Runs `docker ARGS`; throws with what it printed when it fails.</summary>
    public static string Docker(params string[] args)
    {
        var (code, output) = Tool.Run("docker", args, CommandTimeout);
        if (code != 0) throw new InvalidOperationException($"docker {string.Join(' ', args)} failed ({code}): {output}");
        return output;
    }

    public void Dispose() => Remove(Name, _environment);

    private static string[] ProjectArguments(string name) => ["--project-name", name, "--file", ComposeFile.DefaultPath];

    private static void Remove(string name, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var (program, prefix) = DockerEngine.Compose!.Value;
        Tool.Run(program, [.. prefix, .. ProjectArguments(name), "down", "--volumes", "--remove-orphans", "--timeout", "5"],
            CommandTimeout, environment);
        // By name and the project's image first: a base with a child image cannot be deleted before the child.
        var images = Tool.Run("docker", ["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", $"reference={name}*"]).Output
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).OrderBy(i => i.Length).ToArray();
        if (images.Length > 0) Tool.Run("docker", ["rmi", .. images], CommandTimeout);
    }

    private static void RemoveLeftovers()
    {
        var projects = Tool.Run("docker", ["ps", "--all", "--filter", "label=com.docker.compose.project",
            "--format", "{{.Label \"com.docker.compose.project\"}}"]).Output.Split('\n')
            .Concat(Tool.Run("docker", ["images", "--format", "{{.Repository}}"]).Output.Split('\n'));
        foreach (var name in projects.Select(p => Leftover().Match(p.Trim())).Where(m => m.Success)
                     .Where(m => !Directory.Exists($"/proc/{m.Groups["pid"].Value}")).Select(m => m.Groups["name"].Value).Distinct())
            Remove(name);
    }

    [GeneratedRegex(@"^(?<name>disttrain-test-(?<pid>\d+)-[0-9a-f]{8})(-.*)?$")]
    private static partial Regex Leftover();
}

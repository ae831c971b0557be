// Facts that need something of the machine: root for network namespaces, a Compose CLI for `config`, a Docker engine
// for running the compose file. Elsewhere they are skipped with the reason, never silently passed.
using System.Diagnostics;

namespace DistTrain.Tests.Deployment;

public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (NetworkNamespaces.Unavailable() is { } reason) Skip = reason;
    }
}

public sealed class DockerComposeFactAttribute : FactAttribute
{
    public DockerComposeFactAttribute()
    {
        if (DockerEngine.Compose is null)
            Skip = "neither Compose v1 (`docker-compose`) nor v2 (`docker compose`) is installed, so the file cannot be validated offline";
    }
}

public sealed class DockerEngineFactAttribute : FactAttribute
{
    public DockerEngineFactAttribute()
    {
        if (DockerEngine.Unavailable() is { } reason) Skip = reason;
    }
}

internal static class Tool
{
    /// <summary>Runs a program briefly; false when it is missing, fails or takes over 10 s.</summary>
    public static bool Succeeds(string program, params string[] args) => Run(program, args).ExitCode == 0;

    /// <summary>
    /// Runs a program to its end, or kills it after <paramref name="timeout"/> (exit code -1, what it printed kept);
    /// <paramref name="environment"/> sets variables, or with a null value removes them.
    /// </summary>
    public static (int ExitCode, string Output) Run(string program, IEnumerable<string> args, TimeSpan? timeout = null,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            if (value is null) info.Environment.Remove(name);
            else info.Environment[name] = value;
        try
        {
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            var limit = timeout ?? TimeSpan.FromSeconds(10);
            if (!process.WaitForExit(limit))
            {
                process.Kill();
                process.WaitForExit(10_000);
                // A child that kept the pipes open must not hold this up.
                Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(5));
                string partial = (stdout.IsCompletedSuccessfully ? stdout.Result : "") + (stderr.IsCompletedSuccessfully ? stderr.Result : "");
                return (-1, $"{program} timed out after {limit.TotalSeconds:0} s\n{partial}");
            }
            return (process.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}

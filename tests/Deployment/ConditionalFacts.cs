// Facts that need something of the machine: root for network namespaces, the docker compose plugin for
// `docker compose config`. Elsewhere they are skipped with the reason, never silently passed.
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
        if (!Tool.Succeeds("docker", "compose", "version"))
            Skip = "the docker compose plugin is not installed (`docker compose version` failed), so the file cannot be validated offline";
    }
}

internal static class Tool
{
    /// <summary>Runs a program briefly; false when it is missing, fails or takes over 10 s.</summary>
    public static bool Succeeds(string program, params string[] args) => Run(program, args).ExitCode == 0;

    public static (int ExitCode, string Output) Run(string program, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(10)))
            {
                process.Kill();
                return (-1, $"{program} timed out");
            }
            return (process.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}

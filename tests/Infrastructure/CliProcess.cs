// Runs the real disttrain / worker programs (the builds copied next to the test assembly) as child processes with
// a bounded lifetime; a process is only ever ended by the pid this class started.
using System.Diagnostics;
using System.Text;

namespace DistTrain.Tests.Infrastructure;

public sealed class CliProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new(), _stderr = new();

    private CliProcess(string assembly, IEnumerable<string> args, IDictionary<string, string>? environment, string? workingDirectory)
    {
        var info = StartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, assembly), .. args]);
        info.WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory;
        if (environment is not null) foreach (var (k, v) in environment) info.Environment[k] = v;
        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_stdout) _stdout.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>
    /// A program (`dotnet DLL …`, or `ip netns exec NS dotnet DLL …`) with redirected output and no inherited
    /// DISTTRAIN_ settings. Tests run side by side, so unless a test is about the dashboard, `DLL train` does not
    /// compete for the dashboard's port.
    /// </summary>
    internal static ProcessStartInfo StartInfo(string program, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var list = args.ToList();
        foreach (var a in list) info.ArgumentList.Add(a);
        int dll = list.FindIndex(a => a.EndsWith(".dll", StringComparison.Ordinal));
        bool train = dll >= 0 && dll + 1 < list.Count && list[dll + 1] == "train";
        if (train && !list.Any(a => a.StartsWith("--dashboard", StringComparison.Ordinal) || a == "--no-dashboard"))
            info.ArgumentList.Add("--no-dashboard");
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("DISTTRAIN_", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(key);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return info;
    }

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    public static CliProcess Start(string assembly, IEnumerable<string> args, IDictionary<string, string>? environment = null,
        string? workingDirectory = null) => new(assembly, args, environment, workingDirectory);

    /// <summary>Runs disttrain to completion (bounded by <paramref name="timeout"/>) and returns its exit code.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(IEnumerable<string> args, TimeSpan? timeout = null,
        IDictionary<string, string>? environment = null)
    {
        using var p = Start("disttrain.dll", args, environment);
        int code = p.WaitForExit(timeout ?? TimeSpan.FromMinutes(2));
        return (code, p.Stdout, p.Stderr);
    }

    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            Kill();
            throw new TimeoutException($"process {Pid} did not exit within {timeout}; stderr: {Stderr}");
        }
        _process.WaitForExit(); // drains the redirected output
        return _process.ExitCode;
    }

    /// <summary>SIGKILL to exactly this process.</summary>
    public void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: false); }
        catch (InvalidOperationException) { }
        _process.WaitForExit(10_000);
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}

/// <summary>A temporary directory removed at dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Directory.CreateDirectory(Path);
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "disttrain-test-" + Guid.NewGuid().ToString("N")[..12]);
    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string Write(string name, string text)
    {
        System.IO.File.WriteAllText(File(name), text);
        return File(name);
    }
    public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
}

// Starts the built coordinator and worker programs as real processes on 127.0.0.1 (from the projects' bin folders,
// same configuration as the tests), collects their output, and kills exactly the processes it started.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace DistTrain.Tests.Distributed;

public sealed class ProcessHarness : IDisposable
{
    private readonly List<(Process Process, StringBuilder Output)> _started = [];

    public static string RepoRoot { get; } = FindRoot();
    /// <summary>The build configuration (Release, Debug) the tests, and with them the programs, were built in.</summary>
    public static string Configuration { get; } = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;

    public static string CoordinatorDll => Path.Combine(RepoRoot, "coordinator", "bin", Configuration, "net10.0", "disttrain.dll");
    public static string WorkerDll => Path.Combine(RepoRoot, "worker", "bin", Configuration, "net10.0", "DistTrain.Worker.dll");

    public static void WaitForPort(int port, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (DateTime.UtcNow < until)
        {
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) { Thread.Sleep(100); }
        }
        throw new TimeoutException($"nothing listened on 127.0.0.1:{port} within the timeout");
    }

    /// <summary>Starts <paramref name="info"/> with stdout and stderr both appended, line by line, to <paramref name="output"/>.</summary>
    public static Process StartCapturing(ProcessStartInfo info, StringBuilder output)
    {
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public (Process Process, StringBuilder Output) Start(string dll, params string[] args) =>
        StartProgram("dotnet", [dll, .. args], environment: null);

    /// <summary>
    /// Starts any program (e.g. `ip netns exec NS dotnet …`) with only the given DISTTRAIN_ variables, so a setting
    /// of the machine running the tests cannot leak into a run.
    /// </summary>
    public (Process Process, StringBuilder Output) StartProgram(string program, IEnumerable<string> args,
        IReadOnlyDictionary<string, string>? environment)
    {
        var info = DistTrain.Tests.Infrastructure.CliProcess.StartInfo(program, args);
        if (environment is not null) foreach (var (key, value) in environment) info.Environment[key] = value;
        var output = new StringBuilder();
        var process = StartCapturing(info, output);
        _started.Add((process, output));
        return (process, output);
    }

    /// <summary>Waits for the process to exit (bounded); returns its exit code and output.</summary>
    public static (int ExitCode, string Output) Wait((Process Process, StringBuilder Output) started, TimeSpan timeout)
    {
        if (!started.Process.WaitForExit(timeout))
        {
            started.Process.Kill(entireProcessTree: true);
            throw new TimeoutException($"process {started.Process.Id} did not exit within {timeout.TotalSeconds}s:\n{Text(started.Output)}");
        }
        started.Process.WaitForExit(); // drains the output readers
        return (started.Process.ExitCode, Text(started.Output));
    }

    public static string Text(StringBuilder output)
    {
        lock (output) return output.ToString();
    }

    public void Dispose()
    {
        foreach (var (process, _) in _started)
        {
            try { if (!process.HasExited) process.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            process.Dispose();
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "DistTrain.sln"))) return dir.FullName;
        throw new InvalidOperationException("cannot find the repository root (DistTrain.sln) above " + AppContext.BaseDirectory);
    }
}

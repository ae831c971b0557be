// Real coordinator and worker processes on 127.0.0.1 configured the way a deployment configures them (DISTTRAIN_
// environment variables, token files, PEM paths), with everything they print kept so tests can check the logs.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using DistTrain.Tests.Distributed;

namespace DistTrain.Tests.Security;

public sealed class SecureCluster : IDisposable
{
    public static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(90);
    private readonly ProcessHarness _processes = new();
    private readonly List<(string Name, StringBuilder Output)> _outputs = [];

    public string Dir { get; } = Directory.CreateTempSubdirectory("disttrain-secure-").FullName;

    /// <summary>A fresh deployment secret, as `openssl rand -hex 24` would make.</summary>
    public static string NewToken() => Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();

    public string File(string name) => Path.Combine(Dir, name);

    public string WriteFile(string name, string text)
    {
        System.IO.File.WriteAllText(File(name), text);
        return File(name);
    }

    /// <summary>A small blobs problem: a few seconds of training, still several steps and shards per worker.</summary>
    public string WriteConfig(string name = "config.json", int samples = 300, int epochs = 2) => WriteFile(name, $$"""
        {
          "model": { "inputs": 2, "layers": [ { "type": "linear", "units": 16 }, { "type": "tanh" }, { "type": "linear", "units": 3 } ],
                     "loss": "softmax_cross_entropy" },
          "data": { "format": "blobs", "samples": {{samples}}, "classes": 3, "features": 2, "noise": 0.3, "seed": 5, "scale": 1, "testFraction": 0 },
          "optimizer": { "type": "adam", "learningRate": 0.01 },
          "training": { "epochs": {{epochs}}, "batchSize": 100, "shardSize": 25, "seed": 1 }
        }
        """);

    public (Process Process, StringBuilder Output) Coordinator(string url, string config, string save,
        IReadOnlyDictionary<string, string>? environment = null, int expectWorkers = 1, params string[] extra) =>
        Start("coordinator", ProcessHarness.CoordinatorDll, environment,
            ["train", "--config", config, "--listen", url, "--expect-workers", expectWorkers.ToString(), "--save", save,
             "--quiet", "--wait-seconds", "60", .. extra]);

    public (Process Process, StringBuilder Output) Worker(string name, string coordinatorUrl,
        IReadOnlyDictionary<string, string>? environment = null, params string[] extra) =>
        Start(name, ProcessHarness.WorkerDll, environment,
            ["--coordinator", coordinatorUrl, "--threads", "1", "--register-timeout", "60", "--cache-dir", File("cache"), .. extra]);

    private (Process Process, StringBuilder Output) Start(string name, string dll, IReadOnlyDictionary<string, string>? environment,
        string[] args)
    {
        var started = _processes.StartProgram("dotnet", [dll, .. args], environment);
        _outputs.Add((name, started.Output));
        return started;
    }

    /// <summary>Runs a command (`dotnet DLL …`) inside network namespace <paramref name="ns"/>.</summary>
    public (Process Process, StringBuilder Output) StartIn(string ns, string name, string[] command,
        IReadOnlyDictionary<string, string> environment)
    {
        var started = _processes.StartProgram("ip", Deployment.NetworkNamespaces.Exec(ns, command), environment);
        _outputs.Add((name, started.Output));
        return started;
    }

    /// <summary>Local mode on the same config: the weights every distributed run must reproduce byte for byte.</summary>
    public byte[] TrainLocal(string config, IReadOnlyDictionary<string, string>? environment = null)
    {
        string save = File("local.safetensors");
        var run = _processes.StartProgram("dotnet",
            [ProcessHarness.CoordinatorDll, "train", "--config", config, "--threads", "2", "--save", save, "--quiet"], environment);
        var (code, output) = ProcessHarness.Wait(run, RunTimeout);
        Assert.True(code == 0, output);
        return System.IO.File.ReadAllBytes(save);
    }

    /// <summary>Every line any process started here printed, labelled by process.</summary>
    public string AllOutput() =>
        string.Join("\n", _outputs.Select(o => $"--- {o.Name} ---\n{ProcessHarness.Text(o.Output)}"));

    /// <summary>Fails if a secret appears anywhere in what the processes printed.</summary>
    public void AssertNeverLogged(params string[] secrets)
    {
        string all = AllOutput();
        foreach (var secret in secrets)
            Assert.False(all.Contains(secret, StringComparison.Ordinal), $"a secret reached the logs:\n{all}");
    }

    public static void WaitForOutput(StringBuilder output, string text, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!ProcessHarness.Text(output).Contains(text, StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > until) throw new TimeoutException($"'{text}' did not appear:\n{ProcessHarness.Text(output)}");
            Thread.Sleep(100);
        }
    }

    public void Dispose()
    {
        _processes.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

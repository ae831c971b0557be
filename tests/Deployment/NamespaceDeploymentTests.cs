// Multi-host deployment without a Docker engine: the compose file's coordinator and worker services, with the
// commands and environment it gives them, run as the real programs in separate network namespaces — one address
// each, as containers or hosts have — and must train to local mode's weights byte for byte.
using DistTrain.Tests.Distributed;
using DistTrain.Tests.Security;

namespace DistTrain.Tests.Deployment;

public sealed class NamespaceDeploymentTests
{
    private const int Workers = 3;

    [RootFact]
    public void ComposeServicesOnThreeHostsTrainToLocalModesWeights()
    {
        using var cluster = new SecureCluster();
        string data = Path.Combine(cluster.Dir, "fashion-mnist"), checkpoints = Path.Combine(cluster.Dir, "checkpoints");
        Directory.CreateDirectory(data);
        Directory.CreateDirectory(checkpoints);
        Data.IdxFiles.WriteMnistLayout(data, train: 300, test: 50, gzip: false);
        // Same shape of file as examples/fashion-mnist.json, on the 4×3-pixel test images.
        string config = cluster.WriteFile("fashion-mnist.json", """
            {
              "model": { "inputs": 12, "layers": [ { "type": "linear", "units": 16 }, { "type": "relu" }, { "type": "linear", "units": 10 } ],
                         "loss": "softmax_cross_entropy" },
              "data": { "format": "idx", "path": "/data/fashion-mnist", "scale": 255, "standardize": true },
              "optimizer": { "type": "adam", "learningRate": 0.01 },
              "training": { "epochs": 10, "batchSize": 100, "shardSize": 25, "seed": 1 }
            }
            """);
        string token = SecureCluster.NewToken();
        string tokenFile = cluster.WriteFile("disttrain_token", token + "\n");
        var compose = ComposeFile.Load(ComposeFile.DefaultPath,
            new Dictionary<string, string> { ["WORKERS"] = Workers.ToString(), ["EPOCHS"] = "2" });

        using var lab = new NetworkNamespaces();
        var (coordinatorNs, coordinatorIp) = lab.AddHost("coordinator", 10);
        var workers = Enumerable.Range(1, Workers).Select(i => lab.AddHost($"worker{i}", 10 + i)).ToArray();

        // What compose's volumes, secret and service names point at, as this test lays them out.
        var paths = new List<(string From, string To)>
        {
            ("/app/disttrain.dll", ProcessHarness.CoordinatorDll),
            ("/app/DistTrain.Worker.dll", ProcessHarness.WorkerDll),
            ("/app/examples/fashion-mnist.json", config),
            ("/data/fashion-mnist", data),
            ("/checkpoints", checkpoints),
            ("/run/secrets/disttrain_token", tokenFile),
            ("http://coordinator:", $"http://{coordinatorIp}:"),
        };
        string Map(string value, string host) => paths.Aggregate(value, (v, p) => v.Replace(p.From, p.To))
            .Replace("/tmp/disttrain-cache", Path.Combine(cluster.Dir, "cache-" + host));
        var coordinatorService = compose.Services["coordinator"];
        var coordinatorEnvironment = coordinatorService.Environment.ToDictionary(e => e.Key, e => Map(e.Value, "coordinator"));
        var localEnvironment = coordinatorEnvironment.Where(e => e.Key != "DISTTRAIN_TOKEN_FILE").ToDictionary();

        var coordinator = cluster.StartIn(coordinatorNs, "coordinator",
            [.. coordinatorService.Command.Select(c => Map(c, "coordinator"))], coordinatorEnvironment);
        var workerService = compose.Services["worker"];
        foreach (var (ns, _) in workers)
            cluster.StartIn(ns, ns, [.. workerService.Command.Select(c => Map(c, ns))],
                workerService.Environment.ToDictionary(e => e.Key, e => Map(e.Value, ns)));

        var (code, output) = ProcessHarness.Wait(coordinator, SecureCluster.RunTimeout);
        Assert.True(code == 0, cluster.AllOutput());
        foreach (var (_, address) in workers) Assert.Contains($"registered from http://{address}:5101", output);
        Assert.Contains($"{Workers} worker(s) ready", output);

        byte[] distributed = File.ReadAllBytes(Path.Combine(checkpoints, "final.safetensors"));
        Assert.Equal(cluster.TrainLocal(config, localEnvironment), distributed);
        cluster.AssertNeverLogged(token);
    }
}

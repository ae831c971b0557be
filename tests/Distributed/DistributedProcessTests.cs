// Real processes on 127.0.0.1: the coordinator (`disttrain train`) and workers (`DistTrain.Worker`) as built.
// Final weights must be byte-identical to local mode for 1, 2 and 3 workers with unequal threads; each epoch's step
// log must cover every sample exactly once; junk on the coordinator's port must not stop it; a worker whose data
// differs must be refused. Every wait is bounded and only the processes started here are killed.
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using DistTrain.Core.Data;

namespace DistTrain.Tests.Distributed;

public sealed class DistributedProcessTests : IDisposable
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("disttrain-dist-").FullName;
    private readonly ProcessHarness _processes = new();
    /// <summary>The worker processes of the last TrainDistributed (still running: --serve-forever outlives the run).</summary>
    private readonly List<System.Diagnostics.Process> _workers = [];

    /// <summary>The CPUs the kernel lets each compute thread of process <paramref name="pid"/> use (/proc, Linux).</summary>
    private static List<string> ComputeThreadCpus(int pid) =>
        Directory.GetDirectories($"/proc/{pid}/task")
            // "disttrain-worker-compute", cut to the kernel's 15 characters.
            .Where(task => File.ReadAllText(Path.Combine(task, "comm")).Trim() == "disttrain-worke")
            .Select(task => File.ReadLines(Path.Combine(task, "status"))
                .First(line => line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))["Cpus_allowed_list:".Length..].Trim())
            .ToList();

    private string WriteConfig(string name, int samples, int batch, int shard, int epochs, int hidden = 16)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, $$"""
            {
              "model": { "inputs": 2, "layers": [ { "type": "linear", "units": {{hidden}} }, { "type": "tanh" }, { "type": "linear", "units": 3 } ],
                         "loss": "softmax_cross_entropy" },
              "data": { "format": "blobs", "samples": {{samples}}, "classes": 3, "features": 2, "noise": 0.3, "seed": 5, "scale": 1, "testFraction": 0 },
              "optimizer": { "type": "adam", "learningRate": 0.01 },
              "training": { "epochs": {{epochs}}, "batchSize": {{batch}}, "shardSize": {{shard}}, "seed": 1 }
            }
            """);
        return path;
    }

    private byte[] TrainLocal(string config, string name, params string[] extra)
    {
        string save = Path.Combine(_dir, name + ".safetensors");
        var run = _processes.Start(ProcessHarness.CoordinatorDll, ["train", "--config", config, "--threads", "2", "--save", save, "--quiet", .. extra]);
        var (code, output) = ProcessHarness.Wait(run, RunTimeout);
        Assert.True(code == 0, output);
        return File.ReadAllBytes(save);
    }

    /// <summary>Coordinator plus one worker process per entry of <paramref name="threads"/>; returns the weights and step log.</summary>
    /// <remarks>
    /// <paramref name="coordinatorArgs"/> are added to the coordinator's command line; <paramref name="workerArgs"/>
    /// maps a worker's position to flags added to its own.
    /// </remarks>
    private (byte[] Weights, string StepLog, string Output) TrainDistributed(string config, string name, int[] threads,
        Action<int>? beforeWorkers = null, string[]? coordinatorArgs = null, Dictionary<int, string[]>? workerArgs = null)
    {
        int port = ProcessHarness.FreePort();
        string url = $"http://127.0.0.1:{port}";
        string save = Path.Combine(_dir, name + ".safetensors"), log = Path.Combine(_dir, name + ".steps.jsonl");
        var coordinator = _processes.Start(ProcessHarness.CoordinatorDll, ["train", "--config", config, "--listen", url,
            "--expect-workers", threads.Length.ToString(), "--save", save, "--step-log", log, "--quiet", "--wait-seconds", "60",
             .. coordinatorArgs ?? []]);
        beforeWorkers?.Invoke(port);
        _workers.Clear();
        foreach (var (i, t) in threads.Index())
            _workers.Add(_processes.Start(ProcessHarness.WorkerDll, ["--coordinator", url, "--threads", t.ToString(), "--port", "0",
                "--register-timeout", "60", "--cache-dir", Path.Combine(_dir, "cache"), "--serve-forever", .. workerArgs?.GetValueOrDefault(i) ?? []]).Process);
        var (code, output) = ProcessHarness.Wait(coordinator, RunTimeout);
        Assert.True(code == 0, output);
        return (File.ReadAllBytes(save), File.ReadAllText(log), output);
    }

    [Theory]
    [InlineData("fashion-cnn")]
    [InlineData("fashion-resnet")] // batch norm, dropout and residual blocks
    public void ImageModelWeightsAreByteIdenticalForAnyWorkerCount(string model)
    {
        // The example's model on 640 Fashion-MNIST images: 2 epochs of 5 batches of 4 shards.
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(ProcessHarness.RepoRoot, "examples", model + ".json")))!.AsObject();
        config["data"] = new System.Text.Json.Nodes.JsonObject
        {
            ["format"] = "idx", ["path"] = FashionSubset.Write(_dir, 640), ["scale"] = 255, ["standardize"] = "per-channel",
        };
        config["training"] = new System.Text.Json.Nodes.JsonObject { ["epochs"] = 2, ["batchSize"] = 128, ["shardSize"] = 32, ["seed"] = 3 };
        config["schedule"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "cosine", ["warmupSteps"] = 3 };
        string path = Path.Combine(_dir, model + ".json");
        File.WriteAllText(path, config.ToJsonString());
        var local = TrainLocal(path, model + "-local");
        // One worker with gRPC calls, two over TCP step links.
        Assert.Equal(local, TrainDistributed(path, model + "-one", [1], coordinatorArgs: ["--shared-memory", "off", "--tcp-link", "off"]).Weights);
        Assert.Equal(local, TrainDistributed(path, model + "-two", [1, 1], coordinatorArgs: ["--shared-memory", "off"]).Weights);
        var (three, _, output) = TrainDistributed(path, model + "-three", [1, 2, 1], workerArgs: new() { [1] = ["--shared-memory", "false"] });
        Assert.Equal(local, three);
        Assert.Contains("shared memory not used: turned off on this worker", output);
    }

    [Fact]
    public void WeightsAreByteIdenticalForAnyWorkerCountAndEveryEpochCoversEachSampleOnce()
    {
        string even = WriteConfig("even.json", samples: 650, batch: 100, shard: 25, epochs: 3);
        var local = TrainLocal(even, "local");
        Assert.Equal(local, TrainDistributed(even, "one", [1]).Weights);
        // Same-host workers exchange weights and gradients through shared memory unless it is turned off; both
        // transports, and a mix of them, must give the same bits.
        var (two, _, twoOutput) = TrainDistributed(even, "two", [1, 1]);
        Assert.Equal(local, two);
        Assert.Equal(2, CountOf(twoOutput, "weights and gradients through shared memory"));
        // Each same-host worker's compute thread runs on a CPU of its own (when the machine has two).
        var bound = _workers.Select(w => Assert.Single(ComputeThreadCpus(w.Id))).ToList();
        var cpus = DistTrain.Core.Training.CpuAffinity.ProcessCpus;
        Assert.Equal(cpus.Count >= 2 ? [$"{cpus[0]}", $"{cpus[1]}"] : [$"{cpus[0]}", ProcessCpuList(cpus)], bound.Order());
        Assert.Equal(Math.Min(2, cpus.Count), CountOf(twoOutput, "compute threads bound to CPU"));
        // With gRPC calls (--tcp-link off), workers fetch each step's weights from the coordinator, or get them in the
        // request (auto picks the request for a model this small).
        var (twoGrpc, _, grpcOutput) = TrainDistributed(even, "two-grpc", [1, 1],
            coordinatorArgs: ["--shared-memory", "off", "--tcp-link", "off", "--weights-transfer", "fetch"],
            beforeWorkers: port => AssertFetchWithoutATicketIsRefused(port));
        Assert.Equal(local, twoGrpc);
        Assert.Equal(2, CountOf(grpcOutput, "weights and gradients over gRPC"));
        Assert.Equal(local, TrainDistributed(even, "two-push", [1, 1],
            coordinatorArgs: ["--shared-memory", "off", "--tcp-link", "off", "--weights-transfer", "push"]).Weights);
        Assert.Equal(local, TrainDistributed(even, "two-auto", [1, 1], coordinatorArgs: ["--shared-memory", "off", "--tcp-link", "off"]).Weights);
        // By default, workers outside the shared memory get their steps over TCP step links (weights in the request,
        // whatever --weights-transfer says).
        var (twoTcp, _, tcpOutput) = TrainDistributed(even, "two-tcp", [1, 1], coordinatorArgs: ["--shared-memory", "off", "--weights-transfer", "fetch"]);
        Assert.Equal(local, twoTcp);
        Assert.Equal(2, CountOf(tcpOutput, "weights and gradients over the TCP step link"));
        Assert.All(_workers, w => Assert.Equal(ProcessCpuList(DistTrain.Core.Training.CpuAffinity.ProcessCpus), Assert.Single(ComputeThreadCpus(w.Id))));
        var (three, stepLog, output) = TrainDistributed(even, "three", [1, 2, 1],
            workerArgs: new() { [1] = ["--shared-memory", "false"] });
        Assert.Equal(local, three);
        Assert.Contains("w3", output);
        Assert.Equal(2, CountOf(output, "weights and gradients through shared memory"));
        Assert.Contains("weights and gradients over the TCP step link (shared memory not used: turned off on this worker", output);
        AssertEpochsCoverDataset(stepLog, samples: 650, epochs: 3, workers: 3);

        // Shards of 7 leave a short last shard and uneven, truncated last blocks.
        string uneven = WriteConfig("uneven.json", samples: 500, batch: 100, shard: 7, epochs: 2);
        Assert.Equal(TrainLocal(uneven, "uneven-local"), TrainDistributed(uneven, "uneven-three", [1, 2, 1]).Weights);
    }

    [Fact]
    public void Bf16WireIsBitIdenticalToLocalModeWithTheSameRoundingForAnyWorkerCount()
    {
        // Shards of 7: a short last shard, uneven and truncated blocks, blocks of several shards per request.
        string uneven = WriteConfig("bf16.json", samples: 500, batch: 100, shard: 7, epochs: 2);
        var local = TrainLocal(uneven, "bf16-local", "--wire", "bf16");
        Assert.NotEqual(TrainLocal(uneven, "float32-local"), local); // the rounding is applied
        string[] unshared = ["--wire", "bf16", "--shared-memory", "off"];
        Assert.Equal(local, TrainDistributed(uneven, "bf16-one", [1], coordinatorArgs: unshared).Weights);
        Assert.Equal(local, TrainDistributed(uneven, "bf16-two", [1, 2], coordinatorArgs: [.. unshared, "--tcp-link", "off", "--weights-transfer", "fetch"]).Weights);
        // Two workers through shared memory (float32 there, already rounded) and one over a TCP step link (bfloat16).
        var (mixed, _, output) = TrainDistributed(uneven, "bf16-three", [1, 2, 1], coordinatorArgs: ["--wire", "bf16"],
            workerArgs: new() { [1] = ["--shared-memory", "false"] });
        Assert.Equal(local, mixed);
        Assert.Equal(2, CountOf(output, "weights and gradients through shared memory"));
    }

    [Fact]
    public void Bf16WireHalvesTheBytesOfWeightsAndGradientSums()
    {
        // 3,075 parameters; batch 100 in two shards of 50: each worker gets the weights and returns one shard's sum.
        string config = WriteConfig("bf16-bytes.json", samples: 400, batch: 100, shard: 50, epochs: 2, hidden: 512);
        (double Sent, double Received) PerStep(params string[] wire)
        {
            var run = _processes.Start(ProcessHarness.CoordinatorDll, ["bench-distributed", "--no-dashboard", "--config", config,
                "--workers", "2", "--shared-memory", "off", .. wire]);
            var (code, output) = ProcessHarness.Wait(run, RunTimeout);
            Assert.True(code == 0, output);
            var line = Assert.Single(output.Split('\n'), l => l.StartsWith("  w1: ", StringComparison.Ordinal));
            var bytes = System.Text.RegularExpressions.Regex.Match(line, @"per step in messages sent ([\d.]+ (?:B|KiB)), received ([\d.]+ (?:B|KiB))");
            Assert.True(bytes.Success, line);
            return (KiB(bytes.Groups[1].Value), KiB(bytes.Groups[2].Value));
        }
        var float32 = PerStep();
        var bf16 = PerStep("--wire", "bf16");
        const int parameters = 2 * 512 + 512 + 512 * 3 + 3;
        Assert.InRange(float32.Sent, 4.0 * parameters / 1024, 4.0 * parameters / 1024 + 1);
        Assert.InRange(float32.Received, 4.0 * parameters / 1024, 4.0 * parameters / 1024 + 1);
        Assert.InRange(bf16.Sent, 2.0 * parameters / 1024, 2.0 * parameters / 1024 + 1);
        Assert.InRange(bf16.Received, 2.0 * parameters / 1024, 2.0 * parameters / 1024 + 1);
    }

    [Theory]
    // The fashion example (235,146 parameters, batch 128): a millisecond of compute per 0.9 MiB each way.
    [InlineData("fashion-mnist.json", 10_240, 3, true)] // 240 steps: its cosine schedule warms up for 200
    // The lecture example (101,770 parameters, batch 10,000): tens of milliseconds of compute per 0.4 MiB.
    [InlineData("lecture-mnist.json", 10_000, 75, false)]
    public void TheRunSaysWhenItIsCommunicationBound(string example, int samples, int epochs, bool bound)
    {
        string data = FashionSubset.Write(_dir, samples);
        string config = Path.Combine(ProcessHarness.RepoRoot, "examples", example);
        var run = _processes.Start(ProcessHarness.CoordinatorDll, "train", "--config", config, "--data", data, "--epochs", epochs.ToString(),
            "--workers", "2", "--shared-memory", "off", "--quiet");
        var (code, output) = ProcessHarness.Wait(run, TimeSpan.FromSeconds(240));
        Assert.True(code == 0, output);
        var notices = output.Split('\n').Where(l => l.Contains("communication-bound", StringComparison.Ordinal)).ToList();
        if (!bound)
        {
            Assert.Empty(notices);
            return;
        }
        var notice = Assert.Single(notices);
        Assert.Matches(@"the slowest worker computed a median [\d.]+ ms of a [\d.]+ ms step; \d+% of the step is spent outside compute", notice);
        Assert.Contains("--wire bf16", notice);
    }

    [Fact]
    public void DistributedBenchReportsSpeedBytesPerWorkerAndTimeOutsideCompute()
    {
        string config = WriteConfig("bench.json", samples: 600, batch: 100, shard: 25, epochs: 3);
        foreach (var shared in new[] { true, false })
        {
            var run = _processes.Start(ProcessHarness.CoordinatorDll, ["bench-distributed", "--no-dashboard", "--config", config,
                "--workers", "2", .. shared ? Array.Empty<string>() : ["--shared-memory", "off"]]);
            var (code, output) = ProcessHarness.Wait(run, RunTimeout);
            Assert.True(code == 0, output);
            Assert.Matches(@"after a warm-up epoch, 12 steps, 1200 samples in [\d.]+s of steps = \d+ samples/s", output);
            // The distribution of the same 12 steps' times.
            var times = System.Text.RegularExpressions.Regex.Match(output,
                @"step time: median ([\d.]+) ms, mean [\d.]+ ms, 90th percentile ([\d.]+) ms, max ([\d.]+) ms \(12 steps\)");
            Assert.True(times.Success, output);
            double Ms(int group) => double.Parse(times.Groups[group].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(Ms(1) > 0 && Ms(1) <= Ms(2) && Ms(2) <= Ms(3), times.Value);
            int parameters = new DistTrain.Core.Model.Network(System.Text.Json.JsonSerializer.Deserialize<DistTrain.Core.Training.TrainingConfig>(
                File.ReadAllText(config), DistTrain.Core.Training.TrainingConfig.Json)!.Model).ParameterCount;
            string vector = $"{4.0 * parameters / 1024:F1}";
            double fileTotal = 0;
            foreach (var worker in new[] { "w1", "w2" })
            {
                var line = Assert.Single(output.Split('\n'), l => l.StartsWith($"  {worker}: ", StringComparison.Ordinal));
                var sent = System.Text.RegularExpressions.Regex.Match(line, @"per step in messages sent ([\d.]+ (?:B|KiB)), received [\d.]+ (?:B|KiB)");
                Assert.True(sent.Success, line);
                double messageKiB = KiB(sent.Groups[1].Value);
                if (shared)
                {
                    // Weights and the batch's indices through the shared file — read by a worker in the steps where it
                    // claimed blocks of the pool, with the indices of those blocks (at most the batch of 100) — so the
                    // requests are small.
                    var file = System.Text.RegularExpressions.Regex.Match(line, @"through shared memory: weights and indices ([\d.]+ (?:B|KiB))");
                    Assert.True(file.Success, line);
                    double fileKiB = KiB(file.Groups[1].Value);
                    Assert.InRange(fileKiB, 0, 4.0 * parameters / 1024 + 4.0 * 100 / 1024 + 0.05);
                    fileTotal += fileKiB;
                    Assert.True(messageKiB < 0.5, line);
                }
                else
                {
                    // Weights and indices in every request: above one vector per step.
                    Assert.DoesNotContain("shared memory", line);
                    Assert.True(messageKiB >= 4.0 * parameters / 1024, line);
                }
            }
            // Every step somebody read the weights.
            if (shared) Assert.True(fileTotal >= 4.0 * parameters / 1024 - 0.1, $"{fileTotal} KiB a step through shared memory");
            Assert.Matches(@"network wait: [\d.]+s of [\d.]+s step time = [\d.]+%", output);
        }
    }

    /// <summary>
    /// FetchWeights with tickets no request holds (none is in flight yet; one of the wrong length; one out of nothing) is
    /// refused with FailedPrecondition and no weights.
    /// </summary>
    private static void AssertFetchWithoutATicketIsRefused(int port)
    {
        ProcessHarness.WaitForPort(port);
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var client = new DistTrain.Protos.Coordinator.CoordinatorClient(channel);
        foreach (var ticket in new[] { new byte[16], new byte[3], System.Security.Cryptography.RandomNumberGenerator.GetBytes(16) })
        {
            var e = Assert.Throws<Grpc.Core.RpcException>(() => client.FetchWeights(new DistTrain.Protos.FetchWeightsRequest
            {
                ProtocolVersion = DistTrain.Protos.Protocol.Version, Step = 0, Ticket = Google.Protobuf.ByteString.CopyFrom(ticket),
            }, deadline: DateTime.UtcNow.AddSeconds(20)));
            Assert.Equal(Grpc.Core.StatusCode.FailedPrecondition, e.StatusCode);
        }
    }

    /// <summary>"12 B" or "3.4 KiB" in KiB.</summary>
    private static double KiB(string size)
    {
        var parts = size.Split(' ');
        double value = double.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
        return parts[1] == "B" ? value / 1024 : value;
    }

    /// <summary>A CPU list as /proc writes it ("0-1", "3").</summary>
    private static string ProcessCpuList(IReadOnlyList<int> cpus) =>
        cpus.Count == 1 ? $"{cpus[0]}" : cpus[^1] - cpus[0] == cpus.Count - 1 ? $"{cpus[0]}-{cpus[^1]}" : string.Join(",", cpus);

    private static int CountOf(string text, string part) =>
        text.Split('\n').Count(line => line.Contains(part, StringComparison.Ordinal));

    private static void AssertEpochsCoverDataset(string stepLog, int samples, int epochs, int workers)
    {
        var seen = Enumerable.Range(0, epochs).Select(_ => new List<int>()).ToArray();
        var executors = new HashSet<string>();
        foreach (var line in stepLog.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var step = JsonDocument.Parse(line);
            int epoch = step.RootElement.GetProperty("epoch").GetInt32();
            foreach (var block in step.RootElement.GetProperty("blocks").EnumerateArray())
            {
                executors.Add(block.GetProperty("executor").GetString()!);
                seen[epoch].AddRange(block.GetProperty("indices").EnumerateArray().Select(i => i.GetInt32()));
            }
        }
        foreach (var indices in seen) Assert.Equal(Enumerable.Range(0, samples), indices.Order());
        Assert.Equal(workers, executors.Count);
    }

    [Fact]
    public void CoordinatorSurvivesGarbageAndAbortedCallsThenTrains()
    {
        string config = WriteConfig("robust.json", samples: 300, batch: 100, shard: 25, epochs: 2);
        var (weights, _, _) = TrainDistributed(config, "robust", [1], port =>
        {
            ProcessHarness.WaitForPort(port);
            var random = new Random(42);
            for (int i = 0; i < 5; i++)
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                var junk = new byte[4096];
                random.NextBytes(junk);
                // Odd connections open like HTTP/2, then turn to junk mid-frame.
                if (i % 2 == 1) "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray().CopyTo(junk, 0);
                client.GetStream().Write(junk);
            }
            AbortedGrpcCall(port);
        });
        Assert.Equal(TrainLocal(config, "robust-local"), weights);
    }

    /// <summary>Starts a Register call whose body promises 1000 bytes, sends a few, then cancels it.</summary>
    private static void AbortedGrpcCall(int port)
    {
        using var http = new HttpClient(new SocketsHttpHandler()) { Timeout = TimeSpan.FromSeconds(10) };
        using var cancel = new CancellationTokenSource();
        var body = new PushBody(async stream =>
        {
            await stream.WriteAsync(new byte[] { 0, 0, 0, 3, 232, 10, 3, 1 });
            await stream.FlushAsync();
            cancel.CancelAfter(200);
            await Task.Delay(Timeout.Infinite, cancel.Token);
        });
        var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/disttrain.v1.Coordinator/Register")
        {
            Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, Content = body,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        body.Headers.TryAddWithoutValidation("content-type", "application/grpc");
        try { http.SendAsync(request, cancel.Token).GetAwaiter().GetResult().Dispose(); }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException) { }
    }

    private sealed class PushBody(Func<Stream, Task> write) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => write(stream);
        protected override void SerializeToStream(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
            write(stream).GetAwaiter().GetResult();
        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public void WorkerWithDifferentDataIsRefusedAndCoordinatorExitsWithOneLine()
    {
        // Two IDX directories of the same shape but different samples: the worker's copy has another fingerprint.
        string ours = Path.Combine(_dir, "our-data"), otherData = Path.Combine(_dir, "other-data");
        Directory.CreateDirectory(ours);
        Directory.CreateDirectory(otherData);
        DistTrain.Tests.Data.IdxFiles.WriteMnistLayout(ours, train: 300, test: 50, gzip: false);
        DistTrain.Tests.Data.IdxFiles.WriteMnistLayout(otherData, train: 299, test: 50, gzip: false);
        string config = Path.Combine(_dir, "refuse.json");
        File.WriteAllText(config, $$"""
            {
              "model": { "inputs": 12, "layers": [ { "type": "linear", "units": 10 } ] },
              "data": { "format": "idx", "path": "{{ours}}" },
              "training": { "epochs": 1, "batchSize": 100, "shardSize": 25 }
            }
            """);
        Assert.NotEqual(Fingerprint.Compute(MnistLayout.Load(ours)), Fingerprint.Compute(MnistLayout.Load(otherData)));

        int port = ProcessHarness.FreePort();
        string url = $"http://127.0.0.1:{port}";
        var coordinator = _processes.Start(ProcessHarness.CoordinatorDll, "train", "--config", config, "--listen", url,
            "--expect-workers", "1", "--quiet", "--wait-seconds", "60");
        _processes.Start(ProcessHarness.WorkerDll, "--coordinator", url, "--threads", "1", "--data", otherData, "--register-timeout", "60",
            "--cache-dir", Path.Combine(_dir, "refused-worker-cache"));
        var (code, output) = ProcessHarness.Wait(coordinator, RunTimeout);
        Assert.Equal(1, code);
        Assert.Contains("worker w1", output);
        Assert.Contains("refused", output);
        Assert.Contains("error: only 0 of 1 worker(s) ready", output);
    }

    public void Dispose()
    {
        _processes.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

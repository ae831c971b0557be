// `disttrain bench`: GEMM GFLOP/s on the lecture model's training shapes at 1 and 2 threads, convolution GFLOP/s
// and max-pool times on the MNIST CNN's shapes (single-threaded kernels), and samples/s of
// full local-mode training steps (after a warm-up epoch) with their step-time distribution and the managed bytes
// allocated per steady-state step.
using System.Diagnostics;
using System.Text.Json;
using DistTrain.Coordinator.Reporting;
using DistTrain.Core.Data;
using DistTrain.Core.Kernels;
using DistTrain.Core.Model;
using DistTrain.Core.Training;
using System.Runtime.Intrinsics;

namespace DistTrain.Coordinator.Cli;

public static class BenchCommand
{
    public static async Task<int> RunAsync(CommandOptions flags, CancellationToken cancellationToken)
    {
        var report = new Dictionary<string, object>
        {
            ["machine"] = MachineDescription(),
            ["processors"] = Environment.ProcessorCount,
            ["vector"] = Vector512.IsHardwareAccelerated ? "Vector512" : Vector256.IsHardwareAccelerated ? "Vector256" : "Vector128/scalar",
        };
        int[] threadCounts = (flags.Get("--threads") ?? "1,2").Split(',').Select(t =>
            int.TryParse(t, out int v) && v > 0 ? v : throw new Core.UserInputException($"bench: --threads expects a list like 1,2, found '{t}'")).ToArray();
        Console.WriteLine($"machine: {report["machine"]}; {Environment.ProcessorCount} processors; {report["vector"]}");

        if (!flags.Has("--skip-gemm"))
        {
            int repetitions = flags.GetInt("--repetitions", 1) ?? 5;
            var gemm = new List<object>();
            foreach (int threads in threadCounts)
            {
                foreach (var r in GemmBenchmark.Run(threads, repetitions))
                {
                    Console.WriteLine($"gemm {r.Name,-28} {r.Variant,-4} m={r.M,-6} n={r.N,-5} k={r.K,-6} threads={threads}  {r.GflopsMedian,7:F1} GFLOP/s");
                    gemm.Add(new { name = r.Name, variant = r.Variant, m = r.M, n = r.N, k = r.K, threads, gflops = r.GflopsMedian });
                }
            }
            report["gemm"] = gemm;
        }

        if (!flags.Has("--skip-conv"))
        {
            int repetitions = flags.GetInt("--repetitions", 1) ?? 5;
            var conv = new List<object>();
            foreach (var r in ConvBenchmark.Run([32, 128], repetitions))
            {
                string rate = r.GflopsMedian is { } gflops ? $"{gflops,7:F1} GFLOP/s" : "";
                Console.WriteLine($"conv {r.Layer,-20} {r.Pass,-16} rows={r.Rows,-4} threads=1  {r.MillisecondsMedian,8:F3} ms  {rate}");
                conv.Add(new { layer = r.Layer, pass = r.Pass, rows = r.Rows, threads = 1, ms = r.MillisecondsMedian, gflops = r.GflopsMedian });
            }
            report["conv"] = conv;
        }

        if (!flags.Has("--skip-training"))
        {
            string configPath = flags.Get("--config") ?? Path.Combine(AppContext.BaseDirectory, "examples", "lecture-mnist.json");
            if (!File.Exists(configPath) && flags.Get("--config") is null) configPath = Path.Combine("examples", "lecture-mnist.json");
            var training = new List<object>();
            foreach (int threads in threadCounts)
            {
                var result = await MeasureTrainingAsync(configPath, flags, threads, cancellationToken);
                Console.WriteLine($"train {Path.GetFileName(configPath)} threads={threads}: {result.SamplesPerSecond:N0} samples/s over epochs 2..{result.Epochs} " +
                    $"({result.StepSeconds * 1000:F1} ms/step, {result.Gflops:F1} GFLOP/s effective), " +
                    $"{result.SteadyStateBytes} managed bytes allocated over {result.SteadyStateSteps} steady-state steps, final train loss {result.FinalLoss:F4}");
                Console.WriteLine($"  {result.Times.Describe()}");
                training.Add(result);
            }
            report["training"] = training;
        }

        if (flags.Get("--json") is { Length: > 0 } json)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {json}");
        }
        return 0;
    }

    public sealed record TrainingBenchResult(int Threads, int Epochs, double SamplesPerSecond, double StepSeconds, double Gflops,
        long SteadyStateBytes, long SteadyStateSteps, double FinalLoss, double TrainSecondsTotal,
        [property: System.Text.Json.Serialization.JsonIgnore] StepTimes Times)
    {
        public double MedianStepSeconds => Times.Median;
        public double P90StepSeconds => Times.Quantile(0.9);
        public double MaxStepSeconds => Times.Quantile(1);
    }

    private static async Task<TrainingBenchResult> MeasureTrainingAsync(string configPath, CommandOptions flags, int threads,
        CancellationToken cancellationToken)
    {
        var config = ConfigLoader.Load(configPath, flags);
        config.Training.Threads = threads;
        config.Training.Epochs = flags.GetInt("--epochs", 2) ?? 3;
        config.Training.CheckpointDir = null;
        config.Training.Resume = false;
        var network = new Network(config.Model);
        var data = DataLoader.Load(config.Data);
        using var source = new LocalGradientSource(network, data.Train, threads);
        var probe = new AllocationProbe(source);
        var trainer = new Trainer(config, network, new DataSplit(data.Train, null), Fingerprint.Compute(data), source, probe);
        await trainer.RunAsync(cancellationToken);
        var steady = probe.Epochs.Skip(1).ToList(); // epoch 1 is warm-up (JIT, first touch of buffers)
        double samples = steady.Sum(e => e.Samples), seconds = steady.Sum(e => e.TrainSeconds);
        long steps = steady.Sum(e => e.Steps);
        return new TrainingBenchResult(threads, config.Training.Epochs, samples / seconds, seconds / steps,
            samples * network.TrainingFlopsPerSample() / seconds / 1e9, probe.SteadyBytes, probe.SteadySteps,
            probe.Epochs[^1].Loss, probe.Epochs.Sum(e => e.TrainSeconds), probe.Steady);
    }

    /// <summary>Collects per-epoch training time and the managed bytes allocated between consecutive steps.</summary>
    private sealed class AllocationProbe(LocalGradientSource source) : TrainingObserver
    {
        private long _lastBytes = -1;
        private int _epoch = -1;
        private long _samples, _steps;
        private double _seconds;
        public List<(long Samples, long Steps, double TrainSeconds, double Loss)> Epochs { get; } = [];
        /// <summary>Bytes allocated between consecutive steps after the warm-up epoch, and how many such intervals.</summary>
        public long SteadyBytes { get; private set; }
        public long SteadySteps { get; private set; }
        /// <summary>Durations of the steps after the warm-up epoch (those the samples/s figure counts).</summary>
        public StepTimes Steady { get; } = new();

        private long Allocated => GC.GetAllocatedBytesForCurrentThread() + source.HelperThreadAllocatedBytes;

        public override void OnStep(in StepReport report)
        {
            long now = Allocated;
            // Steady state: after the first epoch, between two steps of the same epoch.
            if (report.Epoch >= 1 && report.Epoch == _epoch && _lastBytes >= 0)
            {
                SteadyBytes += now - _lastBytes;
                SteadySteps++;
            }
            _epoch = report.Epoch;
            _samples += report.Outcome.Samples;
            _steps++;
            _seconds += report.Seconds;
            if (report.Epoch >= 1) Steady.Add(report.Seconds);
            _lastBytes = Allocated;
        }

        public override void OnEpoch(EpochMetrics metrics)
        {
            Epochs.Add((_samples, _steps, _seconds, metrics.TrainLoss));
            _samples = _steps = 0;
            _seconds = 0;
            _lastBytes = -1;
        }
    }

    private static string MachineDescription()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':', 2)[1].Trim() ?? "unknown";
        }
        catch (IOException) { return "unknown"; }
    }
}

// Training checkpoints: weights, optimizer state, step counters, the position in the epoch, the partial epoch
// metrics, the config and the data fingerprint, in one safetensors file written atomically. Resuming from one
// reproduces the uninterrupted run bit for bit because every other input (shuffle, shard tree) is a pure function
// of the seed, the epoch and the step.
using System.Globalization;
using System.Text.RegularExpressions;
using DistTrain.Core.Model;

namespace DistTrain.Core.Training;

/// <summary>Running sums of the current epoch's training metrics.</summary>
public sealed class EpochProgress
{
    public double LossSum { get; set; }
    public long Correct { get; set; }
    public long Samples { get; set; }
    public double GradNormSum { get; set; }
    public long Steps { get; set; }
    public double TrainSeconds { get; set; }

    public void Clear()
    {
        LossSum = GradNormSum = TrainSeconds = 0;
        Correct = Samples = Steps = 0;
    }
}

public sealed class CheckpointState
{
    public long Step { get; init; }
    public int Epoch { get; init; }
    public int BatchInEpoch { get; init; }
    public long OptimizerSteps { get; init; }
    public long SkippedSteps { get; init; }
    public long ClipEvents { get; init; }
    public required EpochProgress Progress { get; init; }
    public required string TrajectoryKey { get; init; }
    public required string ConfigJson { get; init; }
    public required string Fingerprint { get; init; }
    public required float[] Parameters { get; init; }
    public required IReadOnlyDictionary<string, float[]> OptimizerState { get; init; }
}

public static partial class Checkpoint
{
    private const string Format = "disttrain-checkpoint-1";
    private const int Keep = 3;

    [GeneratedRegex(@"^checkpoint-(\d{12})\.safetensors$")]
    private static partial Regex FileName();

    // AtomicFile's temporary name for a checkpoint; one left behind means a writer died mid-write.
    [GeneratedRegex(@"^\.checkpoint-\d{12}\.safetensors\.\d+\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TemporaryName();

    public static string PathFor(string directory, long step) =>
        System.IO.Path.Combine(directory, $"checkpoint-{step:D12}.safetensors");

    public static string Write(string directory, Network network, CheckpointState state)
    {
        var tensors = WeightsFile.ToTensors(network, state.Parameters).ToList();
        foreach (var (name, buffer) in state.OptimizerState)
            tensors.Add(new SafeTensor($"optimizer.{name}", [buffer.Length], buffer));
        var p = state.Progress;
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["step"] = Str(state.Step),
            ["epoch"] = Str(state.Epoch),
            ["batch_in_epoch"] = Str(state.BatchInEpoch),
            ["optimizer_steps"] = Str(state.OptimizerSteps),
            ["skipped_steps"] = Str(state.SkippedSteps),
            ["clip_events"] = Str(state.ClipEvents),
            ["epoch_loss_sum"] = Str(p.LossSum),
            ["epoch_correct"] = Str(p.Correct),
            ["epoch_samples"] = Str(p.Samples),
            ["epoch_grad_norm_sum"] = Str(p.GradNormSum),
            ["epoch_steps"] = Str(p.Steps),
            ["epoch_train_seconds"] = Str(p.TrainSeconds),
            ["trajectory"] = state.TrajectoryKey,
            ["config"] = state.ConfigJson,
            ["data_fingerprint"] = state.Fingerprint,
        };
        string path = PathFor(directory, state.Step);
        AtomicFile.Write(path, stream => SafeTensorsFile.Write(stream, tensors, metadata));
        // Only checkpoints this one supersedes (older steps) are pruned: a newer file is not ours to delete.
        foreach (var old in List(directory).Where(c => c.Step < state.Step).Skip(Keep - 1))
            try { File.Delete(old.Path); } catch (IOException) { }
        return path;
    }

    /// <summary>Checkpoint files in <paramref name="directory"/>, newest step first.</summary>
    public static IReadOnlyList<(long Step, string Path)> List(string directory)
    {
        if (!Directory.Exists(directory)) return [];
        return Directory.EnumerateFiles(directory)
            .Select(f => (Match: FileName().Match(System.IO.Path.GetFileName(f)), Path: f))
            .Where(x => x.Match.Success)
            .Select(x => (long.Parse(x.Match.Groups[1].Value, CultureInfo.InvariantCulture), x.Path))
            .OrderByDescending(x => x.Item1)
            .ToList();
    }

    /// <summary>
    /// Loads the newest readable checkpoint, or null when the directory holds none. A damaged file (a write cut short)
    /// is skipped for the one before it; a checkpoint made with other settings than <paramref name="trajectoryKey"/>
    /// (TrainingConfig.TrajectoryKey) is refused in one line naming what differs — resuming it would silently start
    /// another run, and nothing is deleted.
    /// </summary>
    public static CheckpointState? LoadLatest(string directory, Network network, string trajectoryKey, Action<string>? warn = null)
    {
        RemoveTornWrites(directory, warn);
        foreach (var (_, path) in List(directory))
        {
            SafeTensorsFile file;
            try
            {
                file = SafeTensorsFile.Read(path);
                CheckFormat(file, path);
            }
            catch (UserInputException e)
            {
                warn?.Invoke($"skipping unreadable checkpoint: {e.Message}");
                continue;
            }
            string saved = file.Metadata.GetValueOrDefault("trajectory", "");
            if (saved != trajectoryKey)
                throw new UserInputException(
                    $"{path}: made with other settings than this run's config ({TrajectoryDifference(saved, trajectoryKey)}); " +
                    "resume with the config it was made with, or give another --checkpoint-dir");
            return Load(file, path, network);
        }
        return null;
    }

    /// <summary>"model: checkpoint 784-128(relu)-10 …, config 784-256(relu)-10 …; seed: checkpoint 1, config 2".</summary>
    internal static string TrajectoryDifference(string saved, string current)
    {
        System.Text.Json.Nodes.JsonObject? Parse(string json)
        {
            try { return System.Text.Json.Nodes.JsonNode.Parse(json) as System.Text.Json.Nodes.JsonObject; }
            catch (System.Text.Json.JsonException) { return null; }
        }
        if (Parse(saved) is not { } before || Parse(current) is not { } now) return "the checkpoint does not record its settings";
        var differences = new List<string>();
        foreach (string key in before.Select(p => p.Key).Union(now.Select(p => p.Key)))
        {
            string a = before[key]?.ToJsonString() ?? "none", b = now[key]?.ToJsonString() ?? "none";
            if (a == b) continue;
            if (key == "model") (a, b) = (DescribeModel(a), DescribeModel(b));
            differences.Add($"{key}: checkpoint {Shorten(a)}, config {Shorten(b)}");
        }
        return differences.Count == 0 ? "the settings are recorded differently" : string.Join("; ", differences);
    }

    private static string DescribeModel(string json)
    {
        try { return System.Text.Json.JsonSerializer.Deserialize<ModelSpec>(json, TrainingConfig.Json)?.Describe() ?? json; }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or UserInputException) { return json; }
    }

    private static string Shorten(string s) => s.Length <= 120 ? s : s[..117] + "...";

    private static void CheckFormat(SafeTensorsFile file, string path)
    {
        if (!file.Metadata.TryGetValue("format", out var format) || format != Format)
            throw new UserInputException($"{path}: not a DistTrain checkpoint (metadata format '{format}', expected '{Format}')");
    }

    /// <summary>Deletes temporaries of writes that never completed (the process was killed before the rename).</summary>
    private static void RemoveTornWrites(string directory, Action<string>? warn)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var file in Directory.EnumerateFiles(directory).Where(f => TemporaryName().IsMatch(System.IO.Path.GetFileName(f))).ToList())
        {
            try { File.Delete(file); warn?.Invoke($"removed {System.IO.Path.GetFileName(file)}, left by an interrupted checkpoint write"); }
            catch (IOException) { }
        }
    }

    public static CheckpointState Load(string path, Network network)
    {
        var file = SafeTensorsFile.Read(path);
        CheckFormat(file, path);
        return Load(file, path, network);
    }

    private static CheckpointState Load(SafeTensorsFile file, string path, Network network)
    {
        var m = file.Metadata;
        var parameters = new float[network.ParameterCount];
        WeightsFile.CopyInto(file, path, network, parameters);
        var optimizer = file.Tensors.Where(t => t.Key.StartsWith("optimizer.", StringComparison.Ordinal))
            .ToDictionary(t => t.Key["optimizer.".Length..], t => t.Value.Data);
        return new CheckpointState
        {
            Step = Long(m, "step", path),
            Epoch = (int)Long(m, "epoch", path),
            BatchInEpoch = (int)Long(m, "batch_in_epoch", path),
            OptimizerSteps = Long(m, "optimizer_steps", path),
            SkippedSteps = Long(m, "skipped_steps", path),
            ClipEvents = Long(m, "clip_events", path),
            Progress = new EpochProgress
            {
                LossSum = Double(m, "epoch_loss_sum", path),
                Correct = Long(m, "epoch_correct", path),
                Samples = Long(m, "epoch_samples", path),
                GradNormSum = Double(m, "epoch_grad_norm_sum", path),
                Steps = Long(m, "epoch_steps", path),
                TrainSeconds = Double(m, "epoch_train_seconds", path),
            },
            TrajectoryKey = m.GetValueOrDefault("trajectory", ""),
            ConfigJson = m.GetValueOrDefault("config", ""),
            Fingerprint = m.GetValueOrDefault("data_fingerprint", ""),
            Parameters = parameters,
            OptimizerState = optimizer,
        };
    }

    private static string Str(long v) => v.ToString(CultureInfo.InvariantCulture);
    private static string Str(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static long Long(IReadOnlyDictionary<string, string> m, string key, string path) =>
        m.TryGetValue(key, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v : throw new UserInputException($"{path}: checkpoint metadata '{key}' is missing or not an integer");

    private static double Double(IReadOnlyDictionary<string, string> m, string key, string path) =>
        m.TryGetValue(key, out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
            ? v : throw new UserInputException($"{path}: checkpoint metadata '{key}' is missing or not a number");
}

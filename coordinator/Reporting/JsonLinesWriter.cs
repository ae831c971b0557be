// Machine-readable run records: one JSON object per epoch (--metrics-out) and, optionally, one per step saying
// which executor computed which shards and samples (--step-log). Lines are flushed as written so a crash loses none.
using System.Text.Json;
using DistTrain.Core.Training;

namespace DistTrain.Coordinator.Reporting;

public sealed class MetricsFileWriter : TrainingObserver, IDisposable
{
    private readonly StreamWriter _writer;

    public MetricsFileWriter(string path, bool append) =>
        _writer = OutputFile.Open(path, () => new StreamWriter(path, append) { AutoFlush = true });

    public override void OnEpoch(EpochMetrics m)
    {
        var record = new Dictionary<string, object?>
        {
            ["epoch"] = m.Epoch,
            ["step"] = m.Step,
            ["train_loss"] = Finite(m.TrainLoss),
            ["train_accuracy"] = Finite(m.TrainAccuracy),
            ["test_loss"] = Finite(m.TestLoss),
            ["test_accuracy"] = Finite(m.TestAccuracy),
            ["grad_norm"] = Finite(m.GradNorm),
            ["samples_per_sec"] = Finite(m.SamplesPerSecond),
            ["seconds"] = m.Seconds,
            ["train_seconds"] = m.TrainSeconds,
            ["learning_rate"] = m.LearningRate,
            ["skipped_steps"] = m.SkippedSteps,
            ["clip_events"] = m.ClipEvents,
            ["layer_grad_norms"] = m.LayerGradNorms.ToDictionary(l => l.Layer, l => Finite(l.Norm)),
        };
        _writer.WriteLine(JsonSerializer.Serialize(record));
    }

    // JSON has no NaN or infinity: those become null.
    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    public void Dispose() => _writer.Dispose();
}

public sealed class StepLogWriter : TrainingObserver, IDisposable
{
    private readonly FileStream _file;

    public StepLogWriter(string path, bool append)
    {
        _file = OutputFile.Open(path, () => new FileStream(path, append ? FileMode.OpenOrCreate : FileMode.Create, FileAccess.ReadWrite, FileShare.Read, 1));
        if (append) DropTornLine(_file);
        _file.Seek(0, SeekOrigin.End);
    }

    /// <summary>A coordinator killed mid-line leaves a partial last line; a resumed run continues after the last whole one.</summary>
    private static void DropTornLine(FileStream file)
    {
        long end = file.Length;
        var one = new byte[1];
        while (end > 0)
        {
            file.Position = end - 1;
            file.ReadExactly(one);
            if (one[0] == (byte)'\n') break;
            end--;
        }
        file.SetLength(end);
    }

    public override void OnStep(in StepReport r)
    {
        var blocks = new List<object>();
        foreach (var b in r.Blocks)
        {
            int start = b.FirstShard * r.ShardSize;
            int end = Math.Min(r.BatchIndices.Count, (b.FirstShard + b.ShardCount) * r.ShardSize);
            blocks.Add(new
            {
                first_shard = b.FirstShard,
                shards = b.ShardCount,
                executor = b.Executor,
                indices = r.BatchIndices.Slice(start, end - start).ToArray(),
            });
        }
        var line = JsonSerializer.SerializeToUtf8Bytes(new
        {
            step = r.Outcome.Step,
            epoch = r.Epoch,
            batch = r.Batch,
            samples = r.Outcome.Samples,
            skipped = r.Outcome.Skipped,
            blocks,
        });
        // One write per line (the stream is unbuffered), so a crash cuts at most the line being written.
        var record = new byte[line.Length + 1];
        line.CopyTo(record, 0);
        record[^1] = (byte)'\n';
        _file.Write(record);
    }

    public void Dispose() => _file.Dispose();
}

/// <summary>Opens a file the run writes as it goes, creating its directory; failure is one line naming the path.</summary>
internal static class OutputFile
{
    public static T Open<T>(string path, Func<T> open)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            return open();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new Core.UserInputException($"{path}: cannot open for writing: {e.Message}", e);
        }
    }
}

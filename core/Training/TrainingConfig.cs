// A whole training configuration as bound from JSON, DISTTRAIN_ environment variables and command-line flags:
// model, data, optimizer, schedule and the run settings. Validation names the field, the expectation and the value.
using System.Text.Json;
using System.Text.Json.Serialization;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Optim;

namespace DistTrain.Core.Training;

public sealed class RunSpec
{
    public int Epochs { get; set; } = 10;
    public int BatchSize { get; set; } = 128;
    /// <summary>Samples per shard, the unit of work and of the reduction tree.</summary>
    public int ShardSize { get; set; } = 64;
    public long Seed { get; set; } = 1;
    /// <summary>Compute threads in local mode (0 = all cores).</summary>
    public int Threads { get; set; }
    /// <summary>Global-norm clipping threshold c (0 = off).</summary>
    public double ClipNorm { get; set; }
    /// <summary>skip | stop: what a non-finite averaged gradient does.</summary>
    public string NonFinite { get; set; } = "skip";
    /// <summary>"float32" or "bf16": the precision of weights and gradient sums on the wire (see StepOptions.Bf16Wire).</summary>
    public string Wire { get; set; } = "float32";
    /// <summary>Write a checkpoint every N steps (0 = only at the end of each epoch when a directory is set).</summary>
    public int CheckpointEvery { get; set; }
    public string? CheckpointDir { get; set; }
    public bool Resume { get; set; }
    /// <summary>Weights file (safetensors) to write at the end.</summary>
    public string? Save { get; set; }
    /// <summary>Weights file (safetensors) to start from instead of random initialisation.</summary>
    public string? Init { get; set; }
    /// <summary>JSON-lines file receiving one object per epoch.</summary>
    public string? MetricsOut { get; set; }
    /// <summary>JSON-lines file receiving one object per step: who computed which shards.</summary>
    public string? StepLog { get; set; }
}

public sealed class TrainingConfig
{
    public ModelSpec Model { get; set; } = new();
    public DataSpec Data { get; set; } = new();
    public OptimizerSpec Optimizer { get; set; } = new();
    public ScheduleSpec Schedule { get; set; } = new();
    public RunSpec Training { get; set; } = new();

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public void Validate()
    {
        // Dropout masks follow the run seed (the model spec carries it to every worker).
        Model.Seed = Training.Seed;
        Model.Validate();
        var t = Training;
        if (t.Epochs < 1) throw new UserInputException($"training.epochs must be ≥ 1, found {t.Epochs}");
        if (t.BatchSize < 1) throw new UserInputException($"training.batchSize must be ≥ 1, found {t.BatchSize}");
        if (t.ShardSize < 1) throw new UserInputException($"training.shardSize must be ≥ 1, found {t.ShardSize}");
        if (t.Threads is < 0 or > MaxThreads)
            throw new UserInputException($"training.threads must be 0..{MaxThreads} (0 = all cores), found {t.Threads}");
        if (t.ClipNorm < 0 || double.IsNaN(t.ClipNorm))
            throw new UserInputException($"training.clipNorm must be ≥ 0 (0 = off), found {t.ClipNorm}");
        if (t.CheckpointEvery < 0)
            throw new UserInputException($"training.checkpointEvery must be ≥ 0, found {t.CheckpointEvery}");
        if (t.NonFinite is not ("skip" or "stop"))
            throw new UserInputException($"training.nonFinite must be 'skip' or 'stop', found '{t.NonFinite}'");
        if (t.Wire is not ("float32" or "bf16"))
            throw new UserInputException($"training.wire must be 'float32' or 'bf16', found '{t.Wire}'");
        if (t.Resume && string.IsNullOrEmpty(t.CheckpointDir))
            throw new UserInputException("--resume needs training.checkpointDir (--checkpoint-dir DIR)");
        if (!(Optimizer.LearningRate > 0) || !float.IsFinite(Optimizer.LearningRate))
            throw new UserInputException($"optimizer.learningRate must be > 0, found {Optimizer.LearningRate}");
        _ = OptimizerFactory.Create(Optimizer, 1);
        // The run's real step count is known once the data is loaded; the Trainer checks the schedule against it.
        _ = ScheduleFactory.Create(Schedule, Optimizer.LearningRate, Math.Max(Schedule.TotalSteps, Schedule.WarmupSteps + 1L));
    }

    public StepOptions StepOptions() => new()
    {
        ShardSize = Training.ShardSize,
        ClipNorm = Training.ClipNorm,
        NonFinite = Training.NonFinite == "stop" ? NonFinitePolicy.Stop : NonFinitePolicy.Skip,
        Bf16Wire = Training.Wire == "bf16",
        Threads = EffectiveThreads,
    };

    /// <summary>More compute threads than any machine has cores for is a typo, not a setting (each has a stack and buffers).</summary>
    public const int MaxThreads = 1024;

    public int EffectiveThreads => Training.Threads > 0 ? Training.Threads : Environment.ProcessorCount;

    /// <summary>
    /// The settings that decide the sequence of weights: a checkpoint may only be resumed under the same ones
    /// (epochs may grow; paths and thread counts may change).
    /// </summary>
    public string TrajectoryKey() => JsonSerializer.Serialize(new
    {
        model = Model,
        optimizer = Optimizer,
        schedule = Schedule,
        batchSize = Training.BatchSize,
        shardSize = Training.ShardSize,
        seed = Training.Seed,
        clipNorm = Training.ClipNorm,
        nonFinite = Training.NonFinite,
        // Absent for float32, so checkpoints written before the setting existed still resume.
        wire = Training.Wire == "bf16" ? "bf16" : null,
        data = new { Data.Format, Data.Scale, Data.Standardize },
    }, Json);

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

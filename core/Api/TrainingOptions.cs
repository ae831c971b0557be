// The training settings of a Sequential model's run, set fluently; they fill the same TrainingConfig sections a JSON
// config binds (optimizer, schedule, training) and say where the run's gradients come from.
using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Core.Optim;
using DistTrain.Core.Training;

namespace DistTrain.Core.Api;

public sealed class TrainingOptions
{
    private TrainingConfig _config = new() { Data = new DataSpec { Format = DataSpec.InMemoryFormat } };
    private readonly List<TrainingObserver> _observers = [];

    /// <summary>Null: local threads (<see cref="LocalGradientSource"/>).</summary>
    internal GradientSourceFactory? SourceFactory { get; private set; }
    internal bool OwnsSource { get; private set; }
    internal IReadOnlyList<TrainingObserver> Observers => _observers;

    /// <summary>
    /// Starts from a config's data, optimizer, schedule and training sections (a copy; its model section is ignored,
    /// the model is the one being trained). Later calls override single settings. The data section must describe
    /// the data passed to Train: workers load it from there (without it they receive the rows from the coordinator).
    /// training.save is honoured; training.metricsOut and training.stepLog belong to the disttrain command (observe
    /// a run from code with <see cref="OnEpoch"/> or <see cref="Observe"/>).
    /// </summary>
    public TrainingOptions FromConfig(TrainingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        _config = CopyOf(config, new Model.ModelSpec());
        return this;
    }

    public TrainingOptions Epochs(int epochs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1);
        _config.Training.Epochs = epochs;
        return this;
    }

    public TrainingOptions BatchSize(int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        _config.Training.BatchSize = batchSize;
        return this;
    }

    /// <summary>Samples per shard: the unit of work handed to a thread or worker and the leaf of the reduction tree.</summary>
    public TrainingOptions ShardSize(int shardSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shardSize, 1);
        _config.Training.ShardSize = shardSize;
        return this;
    }

    /// <summary>Seeds the weight initialisation and the per-epoch shuffle.</summary>
    public TrainingOptions Seed(long seed)
    {
        _config.Training.Seed = seed;
        return this;
    }

    /// <summary>Compute threads of local training and evaluation (0 = all cores); the weights do not depend on it.</summary>
    public TrainingOptions Threads(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        _config.Training.Threads = threads;
        return this;
    }

    /// <summary>Global-norm clipping g' = min(1, c/‖g‖)·g of the averaged gradient (0 = off).</summary>
    public TrainingOptions ClipNorm(double maxNorm)
    {
        if (!double.IsFinite(maxNorm) || maxNorm < 0)
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "must be a finite number ≥ 0 (0 = off)");
        _config.Training.ClipNorm = maxNorm;
        return this;
    }

    /// <summary>What a non-finite averaged gradient does: skip the step (counted) or stop the run.</summary>
    public TrainingOptions NonFiniteGradients(NonFinitePolicy policy)
    {
        _config.Training.NonFinite = policy switch
        {
            NonFinitePolicy.Skip => "skip",
            NonFinitePolicy.Stop => "stop",
            _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "not a defined NonFinitePolicy value"),
        };
        return this;
    }

    /// <summary>SGD with optional heavy-ball or Nesterov momentum and L2 weight decay.</summary>
    public TrainingOptions Sgd(double learningRate, double momentum = 0, bool nesterov = false, double weightDecay = 0) =>
        Optimizer(new OptimizerSpec
        {
            Type = "sgd",
            LearningRate = Rate(learningRate),
            Momentum = (float)momentum,
            Nesterov = nesterov,
            WeightDecay = (float)weightDecay,
        });

    /// <summary>Adam (Kingma &amp; Ba 2015) with optional L2 weight decay added to the gradient.</summary>
    public TrainingOptions Adam(double learningRate = 0.001, double beta1 = 0.9, double beta2 = 0.999, double weightDecay = 0) =>
        Optimizer(new OptimizerSpec
        {
            Type = "adam",
            LearningRate = Rate(learningRate),
            Beta1 = (float)beta1,
            Beta2 = (float)beta2,
            WeightDecay = (float)weightDecay,
        });

    /// <summary>AdamW: Adam with decoupled weight decay (Loshchilov &amp; Hutter 2019).</summary>
    public TrainingOptions AdamW(double learningRate = 0.001, double weightDecay = 0.01, double beta1 = 0.9, double beta2 = 0.999) =>
        Optimizer(new OptimizerSpec
        {
            Type = "adamw",
            LearningRate = Rate(learningRate),
            Beta1 = (float)beta1,
            Beta2 = (float)beta2,
            WeightDecay = (float)weightDecay,
        });

    /// <summary>RMSProp with decay <paramref name="alpha"/>, optional momentum and the centered variant.</summary>
    public TrainingOptions RmsProp(double learningRate = 0.01, double alpha = 0.99, double momentum = 0, bool centered = false) =>
        Optimizer(new OptimizerSpec
        {
            Type = "rmsprop",
            LearningRate = Rate(learningRate),
            Alpha = (float)alpha,
            Momentum = (float)momentum,
            Centered = centered,
        });

    public TrainingOptions AdaGrad(double learningRate = 0.01, double initialAccumulator = 0) =>
        Optimizer(new OptimizerSpec
        {
            Type = "adagrad",
            LearningRate = Rate(learningRate),
            InitialAccumulator = (float)initialAccumulator,
        });

    /// <summary>Any optimizer a config's optimizer section can describe; checked here, errors name the field.</summary>
    public TrainingOptions Optimizer(OptimizerSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        _ = OptimizerFactory.Create(spec, 1);
        _config.Optimizer = spec;
        return this;
    }

    /// <summary>Any learning-rate schedule a config's schedule section can describe (constant, step, cosine; warm-up).</summary>
    public TrainingOptions Schedule(ScheduleSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        _config.Schedule = spec;
        return this;
    }

    /// <summary>Starts from the weights in a safetensors file instead of the seeded initialisation.</summary>
    public TrainingOptions InitialWeights(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _config.Training.Init = path;
        return this;
    }

    /// <summary>
    /// Writes checkpoints to <paramref name="directory"/> at every epoch's end and every <paramref name="everySteps"/>
    /// steps (0 = epochs only); with <paramref name="resume"/> the run continues from the newest one, bit-identically.
    /// </summary>
    public TrainingOptions Checkpoints(string directory, int everySteps = 0, bool resume = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentOutOfRangeException.ThrowIfNegative(everySteps);
        _config.Training.CheckpointDir = directory;
        _config.Training.CheckpointEvery = everySteps;
        _config.Training.Resume = resume;
        return this;
    }

    /// <summary>Called after every epoch with its metrics (loss, accuracy, test accuracy, gradient norm, samples/s).</summary>
    public TrainingOptions OnEpoch(Action<EpochMetrics> callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        _observers.Add(new EpochCallback(callback));
        return this;
    }

    /// <summary>Receives every event of the run: start, steps, epochs, checkpoints, messages.</summary>
    public TrainingOptions Observe(TrainingObserver observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        _observers.Add(observer);
        return this;
    }

    /// <summary>Takes the gradients from <paramref name="source"/>, built for this model and data; the caller disposes it.</summary>
    public TrainingOptions GradientSource(IGradientSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        SourceFactory = (_, _) => ValueTask.FromResult(source);
        OwnsSource = false;
        return this;
    }

    /// <summary>Takes the gradients from a source built per run (gRPC workers, for one); the run disposes it at its end.</summary>
    public TrainingOptions GradientSource(GradientSourceFactory factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        SourceFactory = factory;
        OwnsSource = true;
        return this;
    }

    /// <summary>A validated copy of the settings with <paramref name="model"/> as the model section.</summary>
    internal TrainingConfig ToConfig(Model.ModelSpec model)
    {
        var config = CopyOf(_config, model);
        config.Validate();
        return config;
    }

    // Section by section: the settings are plain data, and a copy keeps later changes on either side apart.
    private static TrainingConfig CopyOf(TrainingConfig config, Model.ModelSpec model) => new()
    {
        Model = model,
        Data = Copy(config.Data),
        Optimizer = Copy(config.Optimizer),
        Schedule = Copy(config.Schedule),
        Training = Copy(config.Training),
    };

    private static T Copy<T>(T section) =>
        JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(section, TrainingConfig.Json), TrainingConfig.Json)!;

    private static float Rate(double learningRate)
    {
        if (!double.IsFinite(learningRate) || learningRate <= 0 || !float.IsFinite((float)learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "must be a finite number > 0");
        return (float)learningRate;
    }

    private sealed class EpochCallback(Action<EpochMetrics> callback) : TrainingObserver
    {
        public override void OnEpoch(EpochMetrics metrics) => callback(metrics);
    }
}

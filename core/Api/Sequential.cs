// A model built in code layer by layer, as with PyTorch's nn.Sequential: every call appends to the ModelSpec a JSON
// config binds to, and training runs the Trainer on it. The model keeps the weights of its last run or loaded file.
using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Core.Model;
using DistTrain.Core.Training;

namespace DistTrain.Core.Api;

public sealed class Sequential
{
    private readonly ModelSpec _spec;
    // Loss(...) closes the list of layers; a spec from a config or file arrives closed.
    private bool _closed;
    private Network? _network;

    private Sequential(ModelSpec spec) => _spec = spec;

    /// <summary>An empty model taking <paramref name="inputs"/> features per sample; add layers, then the loss.</summary>
    public static Sequential Create(int inputs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputs, 1);
        return new Sequential(new ModelSpec { Inputs = inputs });
    }

    /// <summary>
    /// An empty model taking images of <paramref name="channels"/> × <paramref name="height"/> × <paramref name="width"/>
    /// (PyTorch's [C, H, W] order); add layers, then the loss.
    /// </summary>
    public static Sequential Create(int channels, int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        return new Sequential(new ModelSpec { Input = [channels, height, width], Inputs = checked(channels * height * width) });
    }

    /// <summary>The model a config's model section describes (copied and validated; errors name the model.* field).</summary>
    public static Sequential FromSpec(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var copy = Copy(spec);
        copy.Validate();
        return new Sequential(copy) { _closed = true };
    }

    /// <summary>Loads weights saved by <see cref="Save"/> or `disttrain train --save`: the file names its own model.</summary>
    public static Sequential Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var file = SafeTensorsFile.Read(path);
        if (!file.Metadata.TryGetValue(WeightsFile.ModelKey, out string? json))
            throw new UserInputException(
                $"{path}: has no '{WeightsFile.ModelKey}' metadata naming its model; load it with Sequential.Load(path, spec)");
        ModelSpec? spec;
        try { spec = JsonSerializer.Deserialize<ModelSpec>(json, TrainingConfig.Json); }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: the '{WeightsFile.ModelKey}' metadata is not a model spec: {e.Message}", e);
        }
        return FromFile(file, path, spec ?? throw new UserInputException($"{path}: the '{WeightsFile.ModelKey}' metadata is null"));
    }

    /// <summary>Loads weights of the model <paramref name="spec"/> (tensor names and shapes must match), e.g. from PyTorch.</summary>
    public static Sequential Load(string path, ModelSpec spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(spec);
        return FromFile(SafeTensorsFile.Read(path), path, Copy(spec));
    }

    /// <summary>A fully connected layer y = x·Wᵀ + b with <paramref name="units"/> outputs.</summary>
    public Sequential Linear(int units)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(units, 1);
        return Add($"Linear({units})", new LayerSpec { Type = "linear", Units = units });
    }

    /// <summary>nn.Conv2d(in, <paramref name="channels"/>, <paramref name="kernel"/>, stride, padding, bias).</summary>
    public Sequential Conv2d(int channels, int kernel, int stride = 1, int padding = 0, bool bias = true) =>
        Add($"Conv2d({channels}, {kernel})", new LayerSpec
        {
            Type = "conv2d", Channels = channels, Kernel = kernel, Stride = stride == 1 ? null : stride, Padding = padding,
            Bias = bias ? null : false,
        });

    /// <summary>nn.MaxPool2d(<paramref name="kernel"/>, stride (the kernel when null), padding).</summary>
    public Sequential MaxPool2d(int kernel, int? stride = null, int padding = 0) =>
        Add($"MaxPool2d({kernel})", new LayerSpec { Type = "maxpool2d", Kernel = kernel, Stride = stride, Padding = padding });

    /// <summary>nn.AvgPool2d(<paramref name="kernel"/>, stride (the kernel when null), padding), padding counted.</summary>
    public Sequential AvgPool2d(int kernel, int? stride = null, int padding = 0) =>
        Add($"AvgPool2d({kernel})", new LayerSpec { Type = "avgpool2d", Kernel = kernel, Stride = stride, Padding = padding });

    /// <summary>nn.AdaptiveAvgPool2d(1): [C, H, W] → [C, 1, 1].</summary>
    public Sequential GlobalAvgPool() => Add("GlobalAvgPool()", new LayerSpec { Type = "global_avgpool" });

    /// <summary>nn.Flatten(): [C, H, W] → [C·H·W] in PyTorch's order.</summary>
    public Sequential Flatten() => Add("Flatten()", new LayerSpec { Type = "flatten" });

    /// <summary>nn.Dropout(<paramref name="p"/>); masks depend on the seed, step and sample only.</summary>
    public Sequential Dropout(double p) => Add($"Dropout({p})", new LayerSpec { Type = "dropout", P = p });

    /// <summary>nn.BatchNorm2d over the channels, on each shard's statistics in training.</summary>
    public Sequential BatchNorm2d(double eps = 1e-5, double momentum = 0.1) =>
        Add("BatchNorm2d()", new LayerSpec
        {
            Type = "batchnorm2d", Eps = eps == 1e-5 ? null : eps, Momentum = momentum == 0.1 ? null : momentum,
        });

    /// <summary>x + f(x), f the layers <paramref name="body"/> adds (a 1×1 projection when f changes the shape).</summary>
    public Sequential Residual(Action<Sequential> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var block = new Sequential(new ModelSpec());
        body(block);
        if (block._spec.Layers.Count == 0) throw new ArgumentException("Residual(...): the body added no layers", nameof(body));
        return Add("Residual(...)", new LayerSpec { Type = "residual", Layers = block._spec.Layers });
    }

    public Sequential ReLU() => Add("ReLU()", new LayerSpec { Type = "relu" });
    public Sequential Sigmoid() => Add("Sigmoid()", new LayerSpec { Type = "sigmoid" });
    public Sequential Tanh() => Add("Tanh()", new LayerSpec { Type = "tanh" });

    /// <summary>The loss the model is trained with; it ends the model (no layers after it).</summary>
    public Sequential Loss(LossFunction loss)
    {
        string name = loss.SpecName();
        string call = $"Loss({loss})";
        EnsureNoWeights(call);
        if (!HasLinearLayer)
            throw new InvalidOperationException($"{call} needs a Linear layer before it; the model so far is {this}");
        _spec.Loss = name;
        _closed = true;
        return this;
    }

    /// <summary>How the weights are initialised before training (default <see cref="WeightInit.Auto"/>).</summary>
    public Sequential Init(WeightInit init)
    {
        string name = init.SpecName();
        EnsureNoWeights($"Init({init})");
        _spec.Init = name;
        return this;
    }

    /// <summary>Features per sample (C·H·W for an image model).</summary>
    public int Inputs => _spec.Inputs;
    /// <summary>The weights of the last training run or loaded file (flat, in tensor order); null before either.</summary>
    public float[]? Weights { get; private set; }
    /// <summary>Fingerprint of the data the weights were trained on; null when unknown.</summary>
    public string? DataFingerprint { get; private set; }
    /// <summary>
    /// What was done to raw features before training (from the data it was trained on, or the file it was loaded
    /// from): <see cref="Predict"/> expects features already preprocessed; the ONNX export applies it itself.
    /// </summary>
    public Data.Preprocessing? Preprocessing { get; private set; }

    /// <summary>A copy of the model section this model is: the object a JSON config's "model" binds to.</summary>
    public ModelSpec ToSpec() => Copy(_spec);

    /// <summary>e.g. "2-64(relu)-3 softmax_cross_entropy".</summary>
    public override string ToString() => _spec.Layers.Count == 0
        ? _spec.Input is { Length: 3 } shape ? $"[{string.Join(",", shape)}] inputs with no layers" : $"{_spec.Inputs} inputs with no layers"
        : _spec.Describe();

    /// <summary>Trains on local threads, or where <see cref="TrainingOptions.GradientSource(GradientSourceFactory)"/> says.</summary>
    public TrainingResult Train(DataSplit data, Action<TrainingOptions>? configure = null) =>
        TrainAsync(data, configure).GetAwaiter().GetResult();

    /// <summary>Trains on <paramref name="data"/> with no test set.</summary>
    public TrainingResult Train(Dataset data, Action<TrainingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Train(new DataSplit(data, null), configure);
    }

    /// <summary>
    /// Runs the Trainer with the options <paramref name="configure"/> sets (defaults as in a config file without them).
    /// Every run starts from the seeded initialisation, or from <see cref="TrainingOptions.InitialWeights"/>; the
    /// final weights become this model's <see cref="Weights"/>.
    /// </summary>
    public async Task<TrainingResult> TrainAsync(DataSplit data, Action<TrainingOptions>? configure = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        EnsureLinearLayer("Train");
        var options = new TrainingOptions();
        configure?.Invoke(options);
        var config = options.ToConfig(ToSpec());
        var network = new Network(config.Model);
        // Before any source starts (workers, say): a mismatch is the user's to fix, not a cluster's to discover.
        network.CheckCompatible(data.Train);
        if (data.Test is { } test) network.CheckCompatible(test);
        string fingerprint = Fingerprint.Compute(data);

        var source = options.SourceFactory is { } factory
            ? await factory(new TrainingContext(config, network, data, fingerprint), cancellationToken).ConfigureAwait(false)
            : new LocalGradientSource(network, data.Train, config.EffectiveThreads);
        var outcome = RunOutcome.Failed;
        string detail = "";
        try
        {
            var history = new EpochHistory();
            var trainer = new Trainer(config, network, data, fingerprint, source, new CompositeObserver([history, .. options.Observers]));
            float[] weights = await trainer.RunAsync(cancellationToken).ConfigureAwait(false);
            Evaluation train;
            Evaluation? testResult = null;
            using (var evaluator = new Evaluator(network, config.EffectiveThreads))
            {
                train = Evaluate(evaluator, weights, data.Train);
                if (data.Test is { } t) testResult = Evaluate(evaluator, weights, t);
            }
            (Weights, DataFingerprint, Preprocessing, _network) = (weights, fingerprint, data.Preprocessing, network);
            if (config.Training.Save is { Length: > 0 } path) Save(path);
            outcome = RunOutcome.Finished;
            return new TrainingResult(config, weights, history.Epochs, fingerprint, train, testResult);
        }
        catch (Exception e)
        {
            (outcome, detail) = e is OperationCanceledException && cancellationToken.IsCancellationRequested
                ? (RunOutcome.Interrupted, "cancelled")
                : (RunOutcome.Failed, e.Message);
            throw;
        }
        finally
        {
            // A source the run owns lives for this run only: it hears how the run ended, then is disposed.
            if (options.SourceFactory is null || options.OwnsSource)
            {
                (source as IRunEndListener)?.OnRunEnded(outcome, detail);
                if (source is IAsyncDisposable asyncDisposable) await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                else (source as IDisposable)?.Dispose();
            }
        }
    }

    /// <summary>Mean loss and accuracy of <see cref="Weights"/> on every sample of <paramref name="data"/>.</summary>
    public Evaluation Evaluate(Dataset data, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        var weights = RequireWeights(nameof(Evaluate));
        _network!.CheckCompatible(data);
        using var evaluator = new Evaluator(_network, threads > 0 ? threads : Environment.ProcessorCount);
        return Evaluate(evaluator, weights, data);
    }

    /// <summary>
    /// The network's raw outputs (logits before the loss's softmax or sigmoid), [rows × outputs], for row-major
    /// <paramref name="inputs"/> of <see cref="Inputs"/> features per row.
    /// </summary>
    public float[] Predict(ReadOnlySpan<float> inputs)
    {
        var weights = RequireWeights(nameof(Predict));
        var network = _network!;
        if (inputs.Length % network.Inputs != 0)
            throw new ArgumentException(
                $"inputs has {inputs.Length} values, not a whole number of rows of {network.Inputs} features", nameof(inputs));
        using var predictor = new Predictor(network, threads: 1);
        return predictor.Predict(weights, inputs.ToArray()).Logits;
    }

    /// <summary>
    /// Writes <see cref="Weights"/> as safetensors with the metadata `disttrain train --save` writes (the model spec,
    /// the data fingerprint and the preprocessing), so `disttrain evaluate`, `predict`, `export` and
    /// <see cref="Load(string)"/> read it.
    /// </summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var weights = RequireWeights(nameof(Save));
        WeightsFile.Save(path, _network!, weights, WeightsFile.TrainedMetadata(_spec, DataFingerprint, Preprocessing));
    }

    /// <summary>
    /// Writes an ONNX model (opset 17) taking raw features (the <see cref="Preprocessing"/> is its first nodes) and
    /// giving "logits" and "probabilities", for ONNX Runtime or ML.NET.
    /// </summary>
    public void ExportOnnx(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var weights = RequireWeights(nameof(ExportOnnx));
        Export.OnnxExporter.Export(_network!, weights, Preprocessing, path);
    }

    private static Sequential FromFile(SafeTensorsFile file, string path, ModelSpec spec)
    {
        var network = new Network(spec);
        var weights = new float[network.ParameterCount];
        WeightsFile.CopyInto(file, path, network, weights);
        return new Sequential(spec)
        {
            _closed = true,
            _network = network,
            Weights = weights,
            DataFingerprint = file.Metadata.GetValueOrDefault(WeightsFile.FingerprintKey),
            Preprocessing = file.Metadata.TryGetValue(Data.Preprocessing.MetadataKey, out string? json) ? Data.Preprocessing.FromJson(json, path) : null,
        };
    }

    private static Evaluation Evaluate(Evaluator evaluator, float[] weights, Dataset data)
    {
        var (loss, accuracy) = evaluator.Evaluate(weights, data);
        return new Evaluation(loss, accuracy, data.Count);
    }

    private Sequential Add(string call, LayerSpec layer)
    {
        EnsureNoWeights(call);
        if (_closed) throw new InvalidOperationException($"{call} after the loss: the loss ends the model ({this}); add layers before it");
        _spec.Layers.Add(layer);
        return this;
    }

    private bool HasLinearLayer => _spec.Layers.Any(l => l.Type.Equals("linear", StringComparison.OrdinalIgnoreCase));

    private void EnsureLinearLayer(string call)
    {
        if (!HasLinearLayer)
            throw new InvalidOperationException($"{call}: the model ({this}) has no Linear layer; add one with Linear(units)");
    }

    // Weights belong to one architecture; changing it would leave them describing another network.
    private void EnsureNoWeights(string call)
    {
        if (Weights is not null)
            throw new InvalidOperationException($"{call}: the model ({this}) already has weights; build a new model to change it");
    }

    private float[] RequireWeights(string call) => Weights ??
        throw new InvalidOperationException($"{call}: the model ({this}) has no weights yet; train it or load it first");

    // A deep copy through the JSON a config binds, so every field of every layer (nested residual bodies included)
    // is kept.
    private static ModelSpec Copy(ModelSpec spec) =>
        JsonSerializer.Deserialize<ModelSpec>(JsonSerializer.Serialize(spec, TrainingConfig.Json), TrainingConfig.Json)!;

    private sealed class EpochHistory : TrainingObserver
    {
        public List<EpochMetrics> Epochs { get; } = [];
        public override void OnEpoch(EpochMetrics metrics) => Epochs.Add(metrics);
    }
}

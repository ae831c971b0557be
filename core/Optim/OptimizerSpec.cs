// Optimizer and learning-rate schedule settings as they appear in a training config ("optimizer" and
// "schedule" sections). Plain settable properties so Microsoft.Extensions.Configuration can bind them.
namespace DistTrain.Core.Optim;

public sealed class OptimizerSpec
{
    /// <summary>sgd | adagrad | rmsprop | adam | adamw (momentum/Nesterov are SGD parameters).</summary>
    public string Type { get; set; } = "adam";
    public float LearningRate { get; set; } = 0.001f;
    /// <summary>SGD heavy-ball momentum μ (0 = plain SGD); RMSProp momentum.</summary>
    public float Momentum { get; set; }
    public bool Nesterov { get; set; }
    /// <summary>L2 penalty added to the gradient (SGD, AdaGrad, RMSProp, Adam) or decoupled decay (AdamW).</summary>
    public float WeightDecay { get; set; }
    public float Beta1 { get; set; } = 0.9f;
    public float Beta2 { get; set; } = 0.999f;
    /// <summary>Numerical-stability term ε (AdaGrad, RMSProp, Adam, AdamW).</summary>
    public float Epsilon { get; set; } = 1e-8f;
    /// <summary>RMSProp decay of the squared-gradient average.</summary>
    public float Alpha { get; set; } = 0.99f;
    /// <summary>RMSProp: divide by the centered second moment √(E[g²] − E[g]²) (Graves 2013).</summary>
    public bool Centered { get; set; }
    /// <summary>AdaGrad: starting value of the squared-gradient sum.</summary>
    public float InitialAccumulator { get; set; }
}

public sealed class ScheduleSpec
{
    /// <summary>constant | step | cosine.</summary>
    public string Type { get; set; } = "constant";
    /// <summary>Linear warm-up from 0 to the base rate over this many steps (any schedule).</summary>
    public int WarmupSteps { get; set; }
    /// <summary>step: multiply by <see cref="Gamma"/> every StepSize steps.</summary>
    public int StepSize { get; set; } = 1000;
    public float Gamma { get; set; } = 0.1f;
    /// <summary>cosine: final learning rate after TotalSteps (TotalSteps 0 = the run's total).</summary>
    public float MinLearningRate { get; set; }
    public long TotalSteps { get; set; }
}

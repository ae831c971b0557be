// Learning-rate schedules against their closed forms at chosen steps, including the warm-up boundaries.
using DistTrain.Core;
using DistTrain.Core.Optim;

namespace DistTrain.Tests.Optim;

public class ScheduleTests
{
    private static void AssertRate(double expected, float actual) =>
        Assert.True(Math.Abs(actual - expected) <= 1e-6 * Math.Abs(expected) + 1e-12, $"expected {expected:R}, got {actual:R}");

    [Fact]
    public void ConstantIsTheBaseRate()
    {
        var schedule = ScheduleFactory.Create(new ScheduleSpec(), 0.1f, 100);
        foreach (long t in new long[] { 0, 1, 99, 100, 10_000 }) Assert.Equal(0.1f, schedule.At(t));
    }

    [Fact]
    public void StepDecaysByGammaEveryStepSize()
    {
        var schedule = ScheduleFactory.Create(new ScheduleSpec { Type = "step", StepSize = 10, Gamma = 0.5f }, 0.1f, 0);
        AssertRate(0.1, schedule.At(0));
        AssertRate(0.1, schedule.At(9));
        AssertRate(0.05, schedule.At(10));
        AssertRate(0.025, schedule.At(20));
        AssertRate(0.025, schedule.At(29));
        AssertRate(0.1 * Math.Pow(0.5, 3), schedule.At(39));
    }

    [Fact]
    public void CosineFollowsTheHalfCosineAndClampsAtTotal()
    {
        var schedule = ScheduleFactory.Create(new ScheduleSpec { Type = "cosine", MinLearningRate = 0.1f }, 1f, 100);
        double Cos(long t) => 0.1 + 0.9 * (1 + Math.Cos(Math.PI * t / 100)) / 2;
        AssertRate(1.0, schedule.At(0));
        AssertRate(Cos(25), schedule.At(25));
        AssertRate(0.55, schedule.At(50));
        AssertRate(Cos(99), schedule.At(99));
        AssertRate(0.1, schedule.At(100));
        AssertRate(0.1, schedule.At(1000));
    }

    [Fact]
    public void SpecTotalStepsOverridesTheRunLength()
    {
        var schedule = ScheduleFactory.Create(new ScheduleSpec { Type = "cosine", TotalSteps = 10 }, 1f, 1000);
        AssertRate(0.5, schedule.At(5));
        AssertRate(0.0, schedule.At(10));
    }

    [Fact]
    public void WarmupRampsLinearlyThenStartsTheCosineFromItsBeginning()
    {
        // W = 10, T = 110: the cosine runs over the remaining 100 steps.
        var schedule = ScheduleFactory.Create(
            new ScheduleSpec { Type = "cosine", WarmupSteps = 10, MinLearningRate = 0.1f }, 1f, 110);
        AssertRate(0.1, schedule.At(0));
        AssertRate(0.5, schedule.At(4));
        AssertRate(1.0, schedule.At(9));   // last warm-up step reaches the base rate
        AssertRate(1.0, schedule.At(10));  // cosine at its own step 0
        AssertRate(0.1 + 0.9 * (1 + Math.Cos(Math.PI * 0.25)) / 2, schedule.At(35));
        AssertRate(0.55, schedule.At(60));
        AssertRate(0.1, schedule.At(110));
        AssertRate(0.1, schedule.At(5000));
    }

    [Fact]
    public void WarmupBeforeStepDecayShiftsTheDecay()
    {
        var schedule = ScheduleFactory.Create(
            new ScheduleSpec { Type = "step", WarmupSteps = 5, StepSize = 10, Gamma = 0.1f }, 0.2f, 0);
        AssertRate(0.04, schedule.At(0));
        AssertRate(0.2, schedule.At(4));
        AssertRate(0.2, schedule.At(14));
        AssertRate(0.2 * 0.1f, schedule.At(15));
        AssertRate(0.2 * 0.1f * 0.1f, schedule.At(25));
    }

    [Fact]
    public void WarmupOnConstant()
    {
        var schedule = ScheduleFactory.Create(new ScheduleSpec { WarmupSteps = 4 }, 0.4f, 0);
        Assert.Equal([0.1f, 0.2f, 0.3f, 0.4f, 0.4f], [.. Enumerable.Range(0, 5).Select(t => schedule.At(t))]);
    }

    public static TheoryData<string, ScheduleSpec, long, string> BadSpecs => new()
    {
        { "unknown type", new() { Type = "linear" }, 100, "schedule.type 'linear' is unknown; expected one of constant, step, cosine" },
        { "negative warm-up", new() { WarmupSteps = -5 }, 100, "schedule.warmupSteps must be >= 0, found -5" },
        { "gamma 0", new() { Type = "step", Gamma = 0f }, 100, "schedule.gamma must be > 0 and finite, found 0" },
        { "step size 0", new() { Type = "step", StepSize = 0 }, 100, "schedule.stepSize must be >= 1, found 0" },
        { "warm-up past total", new() { Type = "cosine", WarmupSteps = 100 }, 100, "schedule.warmupSteps must be < the total steps (100) for a cosine schedule, found 100" },
        { "cosine without total", new() { Type = "cosine" }, 0, "schedule.totalSteps must be >= 1 for a cosine schedule, found 0 and the run's total is 0" },
        { "minimum above base", new() { Type = "cosine", MinLearningRate = 2f }, 100, "schedule.minLearningRate must be in [0, 1] (the base rate), found 2" },
        { "negative total", new() { Type = "cosine", TotalSteps = -1 }, 100, "schedule.totalSteps must be >= 0 (0 = the run's total), found -1" },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void BadSettingIsOneLineNamingTheField(string what, ScheduleSpec spec, long totalSteps, string message)
    {
        var error = Assert.Throws<UserInputException>(() => ScheduleFactory.Create(spec, 1f, totalSteps));
        Assert.True(message == error.Message, $"{what}: {error.Message}");
    }
}

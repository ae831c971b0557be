// Bad optimizer settings are refused with one line naming the config field, the expected range and the value.
using DistTrain.Core;
using DistTrain.Core.Optim;

namespace DistTrain.Tests.Optim;

public class OptimizerValidationTests
{
    public static TheoryData<string, string> BadSpecs => new()
    {
        { "type=adamx", "optimizer.type 'adamx' is unknown; expected one of sgd, adagrad, rmsprop, adam, adamw" },
        { "learningRate=-0.1", "optimizer.learningRate must be > 0 and finite, found -0.1" },
        { "learningRate=0", "optimizer.learningRate must be > 0 and finite, found 0" },
        { "learningRate=NaN", "optimizer.learningRate must be > 0 and finite, found NaN" },
        { "type=sgd momentum=1", "optimizer.momentum must be in [0, 1), found 1" },
        { "type=sgd momentum=-0.5", "optimizer.momentum must be in [0, 1), found -0.5" },
        { "type=sgd nesterov=true", "optimizer.nesterov requires optimizer.momentum > 0, found 0" },
        { "type=sgd weightDecay=-1", "optimizer.weightDecay must be >= 0 and finite, found -1" },
        { "type=adam beta1=1", "optimizer.beta1 must be in [0, 1), found 1" },
        { "type=adamw beta2=-0.1", "optimizer.beta2 must be in [0, 1), found -0.1" },
        { "type=adam epsilon=0", "optimizer.epsilon must be > 0 and finite, found 0" },
        { "type=adam nesterov=true", "optimizer.nesterov applies only to sgd, found optimizer.type 'adam'" },
        { "type=adagrad momentum=0.9", "optimizer.momentum applies only to sgd and rmsprop, found 0.9 with optimizer.type 'adagrad'" },
        { "type=adagrad initialAccumulator=-1", "optimizer.initialAccumulator must be >= 0 and finite, found -1" },
        { "type=rmsprop alpha=1.5", "optimizer.alpha must be in [0, 1), found 1.5" },
        { "type=adam centered=true", "optimizer.centered applies only to rmsprop, found optimizer.type 'adam'" },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void BadSettingIsOneLineNamingTheField(string settings, string message)
    {
        var spec = new OptimizerSpec();
        foreach (var setting in settings.Split(' '))
        {
            var (field, value) = (setting.Split('=')[0], setting.Split('=')[1]);
            var property = typeof(OptimizerSpec).GetProperties()
                .Single(p => string.Equals(p.Name, field, StringComparison.OrdinalIgnoreCase));
            object parsed = property.PropertyType == typeof(float) ? float.Parse(value, System.Globalization.CultureInfo.InvariantCulture)
                : property.PropertyType == typeof(bool) ? bool.Parse(value) : value;
            property.SetValue(spec, parsed);
        }
        var error = Assert.Throws<UserInputException>(() => OptimizerFactory.Create(spec, 10));
        Assert.Equal(message, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [InlineData("sgd", typeof(Sgd), "sgd")]
    [InlineData("AdaGrad", typeof(AdaGrad), "adagrad")]
    [InlineData(" rmsprop ", typeof(RmsProp), "rmsprop")]
    [InlineData("adam", typeof(Adam), "adam")]
    [InlineData("ADAMW", typeof(Adam), "adamw")]
    public void FactoryBuildsEachType(string type, Type expectedClass, string expectedName)
    {
        var optimizer = OptimizerFactory.Create(new OptimizerSpec { Type = type }, 5);
        Assert.IsType(expectedClass, optimizer);
        Assert.Equal(expectedName, optimizer.Name);
        Assert.All(optimizer.State.Values, buffer => Assert.Equal(5, buffer.Length));
    }

    [Fact]
    public void StateKeysFollowTheVariant()
    {
        Assert.Empty(new Sgd(3).State);
        Assert.Equal([Sgd.MomentumKey], new Sgd(3, momentum: 0.9f).State.Keys);
        Assert.Equal([AdaGrad.SumKey], new AdaGrad(3).State.Keys);
        Assert.Equal([0.5f, 0.5f, 0.5f], new AdaGrad(3, initialAccumulator: 0.5f).State[AdaGrad.SumKey]);
        Assert.Equal([RmsProp.SquareAverageKey], new RmsProp(3).State.Keys);
        Assert.Equal(new[] { RmsProp.SquareAverageKey, RmsProp.MomentumKey, RmsProp.GradientAverageKey }.Order(),
            new RmsProp(3, momentum: 0.9f, centered: true).State.Keys.Order());
        Assert.Equal([Adam.FirstMomentKey, Adam.SecondMomentKey], new Adam(3).State.Keys.Order());
    }
}

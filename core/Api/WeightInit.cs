// How a Sequential model's weight matrices are initialised, as an enum for code; each maps to a model.init name.
namespace DistTrain.Core.Api;

public enum WeightInit
{
    /// <summary>He before a ReLU, Glorot otherwise ("auto").</summary>
    Auto,
    /// <summary>He (Kaiming) normal N(0, 2/fan_in) ("he").</summary>
    He,
    /// <summary>Glorot (Xavier) uniform U(±√(6/(fan_in+fan_out))) ("glorot").</summary>
    Glorot,
}

internal static class WeightInitNames
{
    public static string SpecName(this WeightInit init) => init switch
    {
        WeightInit.Auto => "auto",
        WeightInit.He => "he",
        WeightInit.Glorot => "glorot",
        _ => throw new ArgumentOutOfRangeException(nameof(init), init, "not a defined WeightInit value"),
    };
}

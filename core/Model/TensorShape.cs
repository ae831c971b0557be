// The shape of one sample's activations: a flat vector of Channels values, or an image of Channels × Height × Width.
// Images are stored channels-last ([H][W][C] per sample) between layers; Flatten turns that into PyTorch's [C][H][W]
// order, so a linear layer after it has the weight layout of the equivalent PyTorch model.
namespace DistTrain.Core.Model;

public readonly record struct TensorShape(int Channels, int Height, int Width, bool IsImage)
{
    public static TensorShape Flat(int width) => new(width, 1, 1, false);
    public static TensorShape Image(int channels, int height, int width) => new(channels, height, width, true);

    /// <summary>Values per sample.</summary>
    public int Size => checked(Channels * Height * Width);

    /// <summary>As PyTorch prints it without the batch: [C, H, W] or [N].</summary>
    public override string ToString() => IsImage ? $"[{Channels}, {Height}, {Width}]" : $"[{Channels}]";
}

namespace DistTrain.Core.Kernels;

public readonly record struct ConvGeometry(int InChannels, int InHeight, int InWidth, int OutChannels, int KernelHeight,
    int KernelWidth, int Stride, int Padding)
{
    public int OutHeight => (InHeight + 2 * Padding - KernelHeight) / Stride + 1;
    public int OutWidth => (InWidth + 2 * Padding - KernelWidth) / Stride + 1;
    public int InputLength => InChannels * InHeight * InWidth;
    public int OutputLength => OutChannels * OutHeight * OutWidth;
    public int WeightCount => OutChannels * InChannels * KernelHeight * KernelWidth;

    public void Validate(string layerName)
    {
        if (InChannels <= 0 || OutChannels <= 0)
            throw new UserInputException($"{layerName}: channels must be > 0, found {InChannels} in and {OutChannels} out");
        if (KernelHeight < 1 || KernelWidth < 1) throw new UserInputException($"{layerName}: kernel must be ≥ 1, found {KernelHeight}");
        if (Stride < 1) throw new UserInputException($"{layerName}: stride must be ≥ 1, found {Stride}");
        if (Padding < 0) throw new UserInputException($"{layerName}: padding must be ≥ 0, found {Padding}");
        if (InHeight + 2 * Padding < KernelHeight || InWidth + 2 * Padding < KernelWidth)
            throw new UserInputException(
                $"{layerName}: kernel {KernelHeight}x{KernelWidth} is larger than its padded input {InHeight + 2 * Padding}x{InWidth + 2 * Padding}");
    }
}

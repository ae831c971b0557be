// The shape of one convolution or pooling layer on channels-last (NHWC) images: what the kernels need to walk the
// windows, and the one place a bad configuration is turned into a single-line message that names the layer.
namespace DistTrain.Core.Kernels;

/// <summary>
/// A 2-D window operation on one sample stored as [H][W][C]; pooling uses it with OutChannels = InChannels.
/// Output size follows PyTorch (floor mode): (In + 2·Padding − Kernel) / Stride + 1.
/// </summary>
public readonly record struct ConvGeometry(int InChannels, int InHeight, int InWidth, int OutChannels,
    int KernelHeight, int KernelWidth, int Stride, int Padding)
{
    /// <summary>A pooling window over <paramref name="channels"/> channels (square kernel).</summary>
    public static ConvGeometry ForPooling(int channels, int height, int width, int kernel, int stride, int padding) =>
        new(channels, height, width, channels, kernel, kernel, stride, padding);

    public int OutHeight => OutSize(InHeight, KernelHeight);
    public int OutWidth => OutSize(InWidth, KernelWidth);

    /// <summary>Floats of one input sample, [InHeight][InWidth][InChannels].</summary>
    public int InputLength => InHeight * InWidth * InChannels;

    /// <summary>Floats of one output sample, [OutHeight][OutWidth][OutChannels].</summary>
    public int OutputLength => OutHeight * OutWidth * OutChannels;

    /// <summary>Weights in PyTorch's layout [OutChannels][InChannels][KernelHeight][KernelWidth].</summary>
    public int WeightCount => OutChannels * InChannels * KernelHeight * KernelWidth;

    /// <summary>Floats of one im2col patch, ordered (kh, kw, cin): the reduction length of the convolution's GEMM.</summary>
    public int PatchLength => KernelHeight * KernelWidth * InChannels;

    /// <summary>Whether <see cref="Validate"/> would pass.</summary>
    public bool IsValid => Problem() is null;

    /// <summary>Throws <see cref="UserInputException"/> with one line naming <paramref name="layerName"/> if the shape is unusable.</summary>
    public void Validate(string layerName)
    {
        if (Problem() is { } problem) throw new UserInputException($"{layerName}: {problem}");
    }

    /// <summary>
    /// Like <see cref="Validate"/>, plus pooling's own rules (PyTorch's): as many output channels as input channels,
    /// and padding at most half the kernel, so no window lies wholly in the padding.
    /// </summary>
    public void ValidatePooling(string layerName)
    {
        Validate(layerName);
        if (OutChannels != InChannels)
            throw new UserInputException($"{layerName}: pooling keeps the channels, but out_channels = {OutChannels} and in_channels = {InChannels}");
        if (2 * Padding > Math.Min(KernelHeight, KernelWidth))
            throw new UserInputException(
                $"{layerName}: padding must be at most half the kernel ({KernelHeight}×{KernelWidth}), found padding = {Padding}");
    }

    /// <summary>Floor division as in PyTorch: a kernel wider than the padded input gives 0 (C#'s / would round −1/2 up to 0).</summary>
    private int OutSize(int input, int kernel)
    {
        long span = (long)input + 2L * Padding - kernel;
        return Stride < 1 || span < 0 ? 0 : (int)Math.Min(int.MaxValue, span / Stride + 1);
    }

    /// <summary>The first thing wrong with the shape, or null; strings are only built on the failing branch.</summary>
    private string? Problem()
    {
        if (InChannels < 1) return $"in_channels must be ≥ 1, found {InChannels}";
        if (OutChannels < 1) return $"out_channels must be ≥ 1, found {OutChannels}";
        if (InHeight < 1 || InWidth < 1) return $"the input must be at least 1×1, found {InHeight}×{InWidth}";
        if (KernelHeight < 1 || KernelWidth < 1) return $"kernel_size must be ≥ 1, found {KernelHeight}×{KernelWidth}";
        if (Stride < 1) return $"stride must be ≥ 1, found {Stride}";
        if (Padding < 0) return $"padding must be ≥ 0, found {Padding}";
        if (OutHeight < 1 || OutWidth < 1)
            return $"kernel {KernelHeight}×{KernelWidth} is larger than the padded input " +
                $"{(long)InHeight + 2L * Padding}×{(long)InWidth + 2L * Padding} (input {InHeight}×{InWidth}, padding {Padding})";
        long input = (long)InHeight * InWidth * InChannels, output = (long)OutHeight * OutWidth * OutChannels;
        long weights = (long)OutChannels * InChannels * KernelHeight * KernelWidth;
        long patches = (long)OutHeight * OutWidth * KernelHeight * KernelWidth * InChannels; // one sample's im2col
        if (Math.Max(Math.Max(input, output), Math.Max(weights, patches)) > Array.MaxLength)
            return $"too large: {input} input, {output} output, {weights} weight and {patches} patch values per sample, " +
                $"the limit is {Array.MaxLength}";
        return null;
    }
}

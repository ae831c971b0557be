namespace DistTrain.Core.Kernels;

public static class Convolution
{
    public static int ScratchFloats(in ConvGeometry g, int rows) => 0;

    public static void Forward(in ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
        Span<float> y, int rows, Span<float> scratch)
    {
        int ho = g.OutHeight, wo = g.OutWidth, ci = g.InChannels, co = g.OutChannels;
        for (int n = 0; n < rows; n++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                    for (int o = 0; o < co; o++)
                    {
                        float s = bias.IsEmpty ? 0 : bias[o];
                        for (int c = 0; c < ci; c++)
                            for (int ky = 0; ky < g.KernelHeight; ky++)
                                for (int kx = 0; kx < g.KernelWidth; kx++)
                                {
                                    int iy = oy * g.Stride - g.Padding + ky, ix = ox * g.Stride - g.Padding + kx;
                                    if ((uint)iy >= (uint)g.InHeight || (uint)ix >= (uint)g.InWidth) continue;
                                    s += x[n * g.InputLength + (iy * g.InWidth + ix) * ci + c]
                                        * weight[((o * ci + c) * g.KernelHeight + ky) * g.KernelWidth + kx];
                                }
                        y[n * g.OutputLength + (oy * wo + ox) * co + o] = s;
                    }
    }

    public static void Backward(in ConvGeometry g, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> dy,
        Span<float> weightGrad, Span<float> biasGrad, Span<float> dx, int rows, Span<float> scratch)
    {
        int ho = g.OutHeight, wo = g.OutWidth, ci = g.InChannels, co = g.OutChannels;
        weightGrad[..g.WeightCount].Clear();
        if (!biasGrad.IsEmpty) biasGrad[..co].Clear();
        if (!dx.IsEmpty) dx[..(rows * g.InputLength)].Clear();
        for (int n = 0; n < rows; n++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                    for (int o = 0; o < co; o++)
                    {
                        float d = dy[n * g.OutputLength + (oy * wo + ox) * co + o];
                        if (!biasGrad.IsEmpty) biasGrad[o] += d;
                        for (int c = 0; c < ci; c++)
                            for (int ky = 0; ky < g.KernelHeight; ky++)
                                for (int kx = 0; kx < g.KernelWidth; kx++)
                                {
                                    int iy = oy * g.Stride - g.Padding + ky, ix = ox * g.Stride - g.Padding + kx;
                                    if ((uint)iy >= (uint)g.InHeight || (uint)ix >= (uint)g.InWidth) continue;
                                    int xi = n * g.InputLength + (iy * g.InWidth + ix) * ci + c;
                                    int wi = ((o * ci + c) * g.KernelHeight + ky) * g.KernelWidth + kx;
                                    weightGrad[wi] += d * x[xi];
                                    if (!dx.IsEmpty) dx[xi] += d * weight[wi];
                                }
                    }
    }
}

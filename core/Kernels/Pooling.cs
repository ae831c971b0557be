namespace DistTrain.Core.Kernels;

public static class Pooling
{
    public static void MaxForward(in ConvGeometry g, ReadOnlySpan<float> x, Span<float> y, Span<int> argmax, int rows)
    {
        int c = g.InChannels, ho = g.OutHeight, wo = g.OutWidth;
        for (int n = 0; n < rows; n++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        float best = float.NegativeInfinity; int at = -1;
                        for (int ky = 0; ky < g.KernelHeight; ky++)
                            for (int kx = 0; kx < g.KernelWidth; kx++)
                            {
                                int iy = oy * g.Stride - g.Padding + ky, ix = ox * g.Stride - g.Padding + kx;
                                if ((uint)iy >= (uint)g.InHeight || (uint)ix >= (uint)g.InWidth) continue;
                                int xi = n * g.InputLength + (iy * g.InWidth + ix) * c + ch;
                                if (at < 0 || x[xi] > best || float.IsNaN(x[xi]) && !float.IsNaN(best)) { best = x[xi]; at = xi; }
                            }
                        int yi = n * g.OutputLength + (oy * wo + ox) * c + ch;
                        y[yi] = best; argmax[yi] = at;
                    }
    }

    public static void MaxBackward(in ConvGeometry g, ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx, int rows)
    {
        dx[..(rows * g.InputLength)].Clear();
        for (int i = 0; i < rows * g.OutputLength; i++) dx[argmax[i]] += dy[i];
    }

    public static void AvgForward(in ConvGeometry g, ReadOnlySpan<float> x, Span<float> y, int rows)
    {
        int c = g.InChannels, ho = g.OutHeight, wo = g.OutWidth;
        float scale = 1f / (g.KernelHeight * g.KernelWidth);
        for (int n = 0; n < rows; n++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        float s = 0;
                        for (int ky = 0; ky < g.KernelHeight; ky++)
                            for (int kx = 0; kx < g.KernelWidth; kx++)
                            {
                                int iy = oy * g.Stride - g.Padding + ky, ix = ox * g.Stride - g.Padding + kx;
                                if ((uint)iy >= (uint)g.InHeight || (uint)ix >= (uint)g.InWidth) continue;
                                s += x[n * g.InputLength + (iy * g.InWidth + ix) * c + ch];
                            }
                        y[n * g.OutputLength + (oy * wo + ox) * c + ch] = s * scale;
                    }
    }

    public static void AvgBackward(in ConvGeometry g, ReadOnlySpan<float> dy, Span<float> dx, int rows)
    {
        int c = g.InChannels, ho = g.OutHeight, wo = g.OutWidth;
        float scale = 1f / (g.KernelHeight * g.KernelWidth);
        dx[..(rows * g.InputLength)].Clear();
        for (int n = 0; n < rows; n++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                    for (int ch = 0; ch < c; ch++)
                        for (int ky = 0; ky < g.KernelHeight; ky++)
                            for (int kx = 0; kx < g.KernelWidth; kx++)
                            {
                                int iy = oy * g.Stride - g.Padding + ky, ix = ox * g.Stride - g.Padding + kx;
                                if ((uint)iy >= (uint)g.InHeight || (uint)ix >= (uint)g.InWidth) continue;
                                dx[n * g.InputLength + (iy * g.InWidth + ix) * c + ch] += dy[n * g.OutputLength + (oy * wo + ox) * c + ch] * scale;
                            }
    }

    public static void GlobalAvgForward(ReadOnlySpan<float> x, Span<float> y, int rows, int h, int w, int c)
    {
        for (int n = 0; n < rows; n++)
            for (int ch = 0; ch < c; ch++)
            {
                float s = 0;
                for (int p = 0; p < h * w; p++) s += x[(n * h * w + p) * c + ch];
                y[n * c + ch] = s / (h * w);
            }
    }

    public static void GlobalAvgBackward(ReadOnlySpan<float> dy, Span<float> dx, int rows, int h, int w, int c)
    {
        for (int n = 0; n < rows; n++)
            for (int p = 0; p < h * w; p++)
                for (int ch = 0; ch < c; ch++) dx[(n * h * w + p) * c + ch] = dy[n * c + ch] / (h * w);
    }
}

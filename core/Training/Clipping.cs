// Placeholder; replaced by the optimizer work.
namespace DistTrain.Core.Training;

public static class Clipping
{
    public static double GlobalNorm(ReadOnlySpan<float> g)
    {
        double s = 0;
        foreach (var v in g) s += (double)v * v;
        return Math.Sqrt(s);
    }

    public static double ClipByGlobalNorm(Span<float> g, double maxNorm)
    {
        double norm = GlobalNorm(g);
        if (maxNorm > 0 && double.IsFinite(norm) && norm > maxNorm)
        {
            float scale = (float)(maxNorm / norm);
            for (int i = 0; i < g.Length; i++) g[i] *= scale;
        }
        return norm;
    }

    public static void LayerNorms(ReadOnlySpan<float> g, ReadOnlySpan<(int Offset, int Length)> slices, Span<double> norms)
    {
        for (int i = 0; i < slices.Length; i++) norms[i] = GlobalNorm(g.Slice(slices[i].Offset, slices[i].Length));
    }
}

// Row-major single-precision matrix products in the three forms a Linear layer needs; no transposes are
// materialised. Every output element is reduced over k in one fixed order, whatever the thread count, so results
// are bit-identical for any degree of parallelism (parallelism is over output tiles only).
namespace DistTrain.Core.Kernels;

public static class Gemm
{
    /// <summary>C[m×n] (+)= A[m×k] · B[n×k]ᵀ  (forward: Y = X·Wᵀ).</summary>
    public static void MultiplyABt(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool accumulate, int threads = 1)
    {
        Check(a.Length, m * k, b.Length, n * k, c.Length, m * n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++) s += a[i * k + p] * b[j * k + p];
                c[i * n + j] = accumulate ? c[i * n + j] + s : s;
            }
    }

    /// <summary>C[m×n] (+)= A[k×m]ᵀ · B[k×n]  (weight gradient: dW = dYᵀ·X).</summary>
    public static void MultiplyAtB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool accumulate, int threads = 1)
    {
        Check(a.Length, m * k, b.Length, n * k, c.Length, m * n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++) s += a[p * m + i] * b[p * n + j];
                c[i * n + j] = accumulate ? c[i * n + j] + s : s;
            }
    }

    /// <summary>C[m×n] (+)= A[m×k] · B[k×n]  (input gradient: dX = dY·W).</summary>
    public static void MultiplyAB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k,
        bool accumulate, int threads = 1)
    {
        Check(a.Length, m * k, b.Length, n * k, c.Length, m * n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
                c[i * n + j] = accumulate ? c[i * n + j] + s : s;
            }
    }

    private static void Check(int aLength, int aNeeded, int bLength, int bNeeded, int cLength, int cNeeded)
    {
        if (aLength < aNeeded) throw new ArgumentException($"A has {aLength} elements, needs {aNeeded}", "a");
        if (bLength < bNeeded) throw new ArgumentException($"B has {bLength} elements, needs {bNeeded}", "b");
        if (cLength < cNeeded) throw new ArgumentException($"C has {cLength} elements, needs {cNeeded}", "c");
    }
}

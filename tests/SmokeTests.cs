using DistTrain.Core.Kernels;

namespace DistTrain.Tests;

public class SmokeTests
{
    [Fact]
    public void GemmMultipliesTwoByTwo()
    {
        float[] a = [1, 2, 3, 4], b = [5, 6, 7, 8], c = new float[4];
        Gemm.MultiplyAB(a, b, c, 2, 2, 2, accumulate: false);
        Assert.Equal([19f, 22f, 43f, 50f], c);
    }
}

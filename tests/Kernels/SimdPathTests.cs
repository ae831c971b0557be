// Confirms which SIMD path this process takes. CI reruns the kernel tests with DOTNET_EnableAVX512=0,
// DOTNET_EnableAVX2=0 and DOTNET_EnableHWIntrinsic=0 and says here, through DISTTRAIN_EXPECTED_SIMD_BITS, which
// width each setting must leave; a runtime that ignores a setting then fails instead of silently testing nothing new.
using DistTrain.Core.Kernels;
using Xunit.Abstractions;

namespace DistTrain.Tests.Kernels;

public class SimdPathTests(ITestOutputHelper output)
{
    [Fact]
    public void WidestWidthIsTheOneTheEnvironmentExpects()
    {
        int bits = ElementWise.WidestAcceleratedBits;
        output.WriteLine($"element-wise loops: {bits} bits; GEMM micro-kernel path: {GemmMicroKernels.Path}");
        string? expected = Environment.GetEnvironmentVariable("DISTTRAIN_EXPECTED_SIMD_BITS");
        if (string.IsNullOrEmpty(expected)) return;
        Assert.Equal(int.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), bits);
        // The GEMM path follows the same switches (its AVX2 path also needs FMA, which DOTNET_EnableAVX2=0 turns off).
        var gemmPath = bits switch { 512 => GemmPath.Avx512, 256 => GemmPath.Avx2, 128 => GemmPath.Vector128, _ => GemmPath.Scalar };
        Assert.Equal(gemmPath, GemmMicroKernels.Path);
    }
}

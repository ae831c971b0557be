using System.Diagnostics;
using System.IO.Compression;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Api;

public class PackageTests
{
    [Fact]
    public async Task PackingCoreGivesAPackageWithTheLibraryAndItsReadme()
    {
        using var dir = new TempDirectory();
        string project = Path.Combine(Distributed.ProcessHarness.RepoRoot, "core", "DistTrain.Core.csproj");
        // No build servers or reused MSBuild nodes: nothing of this test outlives it.
        var info = CliProcess.StartInfo("dotnet",
            ["pack", project, "-c", "Release", "-o", dir.Path, "-nodeReuse:false", "-p:UseSharedCompilation=false"]);
        info.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var pack = Process.Start(info)!;
        var stdout = pack.StandardOutput.ReadToEndAsync();
        var stderr = pack.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            try { await pack.WaitForExitAsync(timeout.Token); }
            catch (OperationCanceledException)
            {
                pack.Kill(entireProcessTree: true);
                Assert.Fail("dotnet pack did not finish within 2 minutes");
            }
        }
        Assert.True(pack.ExitCode == 0, $"{await stdout}\n{await stderr}");

        string package = Assert.Single(Directory.GetFiles(dir.Path, "DistTrain.Core.*.nupkg"));
        using var zip = ZipFile.OpenRead(package);
        var entries = zip.Entries.Select(e => e.FullName).ToList();
        Assert.Contains("README.md", entries);
        Assert.Contains("lib/net10.0/DistTrain.Core.dll", entries);
        using var nuspec = new StreamReader(zip.GetEntry("DistTrain.Core.nuspec")!.Open());
        string metadata = nuspec.ReadToEnd();
        Assert.Contains("<id>DistTrain.Core</id>", metadata);
        Assert.Contains("<license type=\"expression\">MIT</license>", metadata);
        Assert.Contains("<readme>README.md</readme>", metadata);
    }
}

// The data plane's layout promise: the same-host transport (shared memory and its Unix-socket step link) lives in its
// own folders and nothing else names it, so deleting them leaves a product that builds and trains — over its
// messages — to the very bytes the full build gives with the same-host transport on. Builds a copy of the sources
// (a minute or two), so it runs with the other process tests, not beside timing-sensitive ones.
using System.Diagnostics;
using DistTrain.Tests.Fault;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Distributed;

[Collection(FaultProcessCollection.Name)]
public sealed class SameHostRemovalTests
{
    private static readonly string[] Projects = ["core", "protos", "worker", "coordinator"];
    private static readonly string[] SameHostFolders = ["protos/SameHost", "worker/SameHost", "coordinator/Distributed/SameHost"];
    private static readonly string[] BuildFiles = ["Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props"];

    /// <summary>Skipped, saying why, where the full build cannot take the same-host path to compare with.</summary>
    public sealed class SharedMemoryFactAttribute : FactAttribute
    {
        public SharedMemoryFactAttribute()
        {
            if (DistTrain.Coordinator.Distributed.ClusterOptions.DefaultSharedMemoryRoot is null)
                Skip = "no /dev/shm here: the full build has no same-host path to compare the stripped one with";
        }
    }

    [SharedMemoryFact]
    public void ABuildWithoutTheSameHostFoldersTrainsOverItsMessagesToTheFullBuildsBytes()
    {
        string root = Path.Combine(Path.GetTempPath(), $"disttrain-without-same-host-{Guid.NewGuid():N}");
        try
        {
            foreach (string project in Projects) CopySources(Path.Combine(ProcessHarness.RepoRoot, project), Path.Combine(root, project));
            foreach (string file in BuildFiles) File.Copy(Path.Combine(ProcessHarness.RepoRoot, file), Path.Combine(root, file));
            foreach (string folder in SameHostFolders)
            {
                string path = Path.Combine(root, folder);
                Assert.True(Directory.EnumerateFiles(path, "*.cs").Any(), $"{folder} holds no source to remove");
                Directory.Delete(path, recursive: true);
            }
            Build(Path.Combine(root, "coordinator", "DistTrain.Coordinator.csproj"));

            string config = Path.Combine(ProcessHarness.RepoRoot, "examples", "spirals.json");
            string stripped = Path.Combine(root, "stripped.safetensors"), full = Path.Combine(root, "full.safetensors");
            string strippedLog = Train(Path.Combine(root, "coordinator", "bin", ProcessHarness.Configuration, "net10.0", "disttrain.dll"),
                config, stripped, root);
            string fullLog = Train(ProcessHarness.CoordinatorDll, config, full, root);

            // The full build took the same-host path (so the comparison spans both transports); the stripped one could not.
            Assert.Equal(2, Ready(fullLog).Count(line => line.Contains("through shared memory", StringComparison.Ordinal)));
            var ready = Ready(strippedLog);
            Assert.Equal(2, ready.Length);
            Assert.All(ready, line => Assert.Contains("weights and gradients over the TCP step link", line));
            Assert.DoesNotContain("shared memory", strippedLog);
            Assert.Equal(File.ReadAllBytes(full), File.ReadAllBytes(stripped));
        }
        finally
        {
            // Best effort: a failure to clean up must not hide the test's own.
            try { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    private static string[] Ready(string log) =>
        log.Split('\n').Where(line => line.Contains(" ready; data:", StringComparison.Ordinal)).ToArray();

    /// <summary>The sources of a project: everything but its build outputs.</summary>
    private static void CopySources(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.EnumerateFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (string directory in Directory.EnumerateDirectories(from))
            if (Path.GetFileName(directory) is not ("bin" or "obj"))
                CopySources(directory, Path.Combine(to, Path.GetFileName(directory)));
    }

    /// <summary>`dotnet build` with no build servers left running after it (this test ends only what it started).</summary>
    private static void Build(string project)
    {
        var info = CliProcess.StartInfo("dotnet", ["build", project, "-c", ProcessHarness.Configuration, "--nologo", "-v", "q", "--disable-build-servers",
            "-p:UseSharedCompilation=false"]);
        using var build = Process.Start(info)!;
        var output = build.StandardOutput.ReadToEndAsync();
        var errors = build.StandardError.ReadToEndAsync();
        if (!build.WaitForExit(TimeSpan.FromMinutes(8)))
        {
            build.Kill(entireProcessTree: true);
            Assert.Fail("the build without the same-host folders did not finish within 8 minutes");
        }
        build.WaitForExit();
        Assert.True(build.ExitCode == 0, $"the build without the same-host folders failed:\n{output.Result}\n{errors.Result}");
    }

    private static string Train(string dll, string config, string save, string root)
    {
        using var run = CliProcess.Start(dll, ["train", "--config", config, "--workers", "2", "--epochs", "2", "--quiet",
            "--save", save, "--cache-dir", Path.Combine(root, "cache")]);
        int code = run.WaitForExit(TimeSpan.FromMinutes(3));
        Assert.True(code == 0, $"{dll} exited {code}: {run.Stderr}");
        return run.Stdout + run.Stderr;
    }
}

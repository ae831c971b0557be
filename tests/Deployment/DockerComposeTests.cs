// The shipped compose file on a real Docker engine, with nothing pulled: the project's image is built, as
// docs/deployment.md describes for machines without the SDK image, from programs published on the host onto the
// local base image of .ci/docker-base-image. Three workers train one epoch of Fashion-MNIST; `up` must end by itself
// with every container exiting 0, the weights must be local mode's byte for byte, and the dashboard must answer.
using System.Diagnostics;
using System.Runtime.Versioning;
using System.Text.Json;
using DistTrain.Core.Data;
using DistTrain.Protos.Security;
using DistTrain.Tests.Distributed;
using DistTrain.Tests.Infrastructure;
using DistTrain.Tests.Security;
using Xunit.Abstractions;

namespace DistTrain.Tests.Deployment;

public sealed class DockerComposeTests(ITestOutputHelper log)
{
    private const int Workers = 3, Epochs = 1;
    private static readonly string Root = ProcessHarness.RepoRoot;
    // `up` takes about 25 s on an idle 2-core machine (start, the coordinator's first health check, 469 steps);
    // the rest is for a loaded one and for workers noticing that the run has ended.
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(3);

    [DockerEngineFact]
    [SupportedOSPlatform("linux")]
    public void ThreeWorkersTrainOneEpochToLocalModesWeightsAndEveryContainerExitsByItself()
    {
        var clock = Stopwatch.StartNew();
        using var dir = new TempDirectory();
        string token = dir.Write("disttrain_token", SecureCluster.NewToken() + "\n");
        // Mounted as it is, so the image's non-root user must be able to read it.
        File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        int coordinatorPort = ProcessHarness.FreePort(), dashboardPort = ProcessHarness.FreePort(), linkPort = ProcessHarness.FreePort();
        while (dashboardPort == coordinatorPort) dashboardPort = ProcessHarness.FreePort();
        while (linkPort == coordinatorPort || linkPort == dashboardPort) linkPort = ProcessHarness.FreePort();
        var variables = new Dictionary<string, string>
        {
            ["WORKERS"] = Workers.ToString(),
            ["EPOCHS"] = Epochs.ToString(),
            ["TOKEN_FILE"] = token,
            ["FASHION_MNIST_DIR"] = DataSpec.DefaultIdxDirectory,
            ["COORDINATOR_PORT"] = coordinatorPort.ToString(),
            ["DASHBOARD_PORT"] = dashboardPort.ToString(),
            ["TCP_LINK_PORT"] = linkPort.ToString(),
        };
        byte[] local = TrainLocal(variables, dir.File("local.safetensors"));
        Lap(clock, "local mode");

        using var project = new ComposeProject(variables);
        string published = Publish(dir.File("publish"));
        // --force-rm: the classic builder otherwise keeps the container of a failed step.
        ComposeProject.Docker("build", "--quiet", "--force-rm", "--target", "runtime-base", "--build-arg", $"RUNTIME_IMAGE={DockerEngine.BaseImage}",
            "--tag", project.Image("runtime-base"), Root);
        ComposeProject.Docker("build", "--quiet", "--force-rm", "--file", Path.Combine(Root, "Dockerfile.published"),
            "--build-arg", $"BASE={project.Image("runtime-base")}", "--tag", project.Image(), published);
        Lap(clock, "project image");

        using var stopPolling = new CancellationTokenSource();
        var dashboard = PollDashboardAsync(dashboardPort, stopPolling.Token);
        var (ended, exitCode, output) = project.Up(UpTimeout, "--no-build", "--no-color", "--scale", $"worker={Workers}");
        stopPolling.Cancel();
        Lap(clock, ended ? "compose up" : "compose up (timed out)");
        var containers = project.Containers();
        string report = $"containers:\n  {string.Join("\n  ", containers)}\ncompose up:\n{Tail(output)}";

        Assert.Contains($"{Workers} worker(s) ready", output);
        // Each worker container has its own /dev/shm: its steps go over a TCP step link to the coordinator's container.
        Assert.True(Workers == System.Text.RegularExpressions.Regex.Count(output, "weights and gradients over the TCP step link"), report);
        byte[] distributed = project.CopyFrom("coordinator", "/checkpoints/final.safetensors", dir.Path);
        Assert.True(local.AsSpan().SequenceEqual(distributed), $"the weights differ from local mode's\n{report}");
        string? status = dashboard.GetAwaiter().GetResult();
        Assert.True(status is not null, $"the dashboard on 127.0.0.1:{dashboardPort} never answered\n{report}");
        Assert.Equal(Epochs, JsonDocument.Parse(status).RootElement.GetProperty("training").GetProperty("epochs").GetInt32());

        Assert.True(ended, $"compose up had not ended by itself after {UpTimeout.TotalSeconds:0} s\n{report}");
        Assert.True(exitCode == 0, $"compose up exited with {exitCode}\n{report}");
        Assert.Equal(["coordinator", .. Enumerable.Repeat("worker", Workers)], containers.Select(c => c.Service).Order(StringComparer.Ordinal));
        foreach (var container in containers)
            Assert.True(container is { Status: "exited", ExitCode: 0, RestartCount: 0 }, $"{container}\n{report}");
    }

    /// <summary>Local mode with the coordinator service's config and environment, its paths mapped to this machine.</summary>
    private static byte[] TrainLocal(IReadOnlyDictionary<string, string> variables, string save)
    {
        var coordinator = ComposeFile.Load(ComposeFile.DefaultPath, variables).Services["coordinator"];
        string config = coordinator.Command[coordinator.Command.ToList().IndexOf("--config") + 1].Replace("/app/", Root + "/");
        var environment = coordinator.Environment.Where(e => e.Key != SecurityOptions.TokenFileVariable)
            .ToDictionary(e => e.Key, e => e.Value.Replace("/data/fashion-mnist", variables["FASHION_MNIST_DIR"]));
        var (code, stdout, stderr) = CliProcess.Run(["train", "--config", config, "--save", save, "--quiet"],
            TimeSpan.FromMinutes(2), environment);
        Assert.True(code == 0, stdout + stderr);
        return File.ReadAllBytes(save);
    }

    /// <summary>`dotnet publish` of both programs into one directory, as the SDK stage of the Dockerfile does.</summary>
    private static string Publish(string output)
    {
        // No build: the tests' own build made the programs. No build servers or reused nodes to outlive the test.
        var environment = new Dictionary<string, string?> { ["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0", ["DOTNET_NOLOGO"] = "1" };
        foreach (var project in new[] { "coordinator/DistTrain.Coordinator.csproj", "worker/DistTrain.Worker.csproj" })
        {
            var (code, text) = Tool.Run("dotnet", ["publish", Path.Combine(Root, project), "-c", ProcessHarness.Configuration,
                "--no-build", "-o", output, "-nodeReuse:false", "-p:UseSharedCompilation=false"], TimeSpan.FromMinutes(2), environment);
            Assert.True(code == 0, text);
        }
        return output;
    }

    /// <summary>The first answer of the dashboard's public status API, polled until <paramref name="stop"/>.</summary>
    private static async Task<string?> PollDashboardAsync(int port, CancellationToken stop)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        while (!stop.IsCancellationRequested)
        {
            try
            {
                // Docker's proxy accepts the connection before the coordinator listens, then drops it: retried.
                using var response = await http.GetAsync($"http://127.0.0.1:{port}/api/status", stop);
                if (response.IsSuccessStatusCode) return await response.Content.ReadAsStringAsync(stop);
                await Task.Delay(250, stop);
            }
            catch (HttpRequestException) { await Task.Delay(250, CancellationToken.None); }
            catch (OperationCanceledException) when (!stop.IsCancellationRequested) { }
            catch (OperationCanceledException) { break; }
        }
        return null;
    }

    private void Lap(Stopwatch clock, string what) => log.WriteLine($"{what}: done at {clock.Elapsed.TotalSeconds:0.0} s");

    private static string Tail(string text, int chars = 8000) => text.Length <= chars ? text : "…" + text[^chars..];
}

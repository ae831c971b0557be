// What this machine offers for running the compose file for real: a Docker engine that answers, a Compose CLI (v1's
// `docker-compose` first: it is what Debian ships; else v2's `docker compose`), and the base image that
// .ci/docker-base-image makes without pulling. Each is asked once, at test discovery.
using DistTrain.Core.Data;

namespace DistTrain.Tests.Deployment;

internal static class DockerEngine
{
    private static readonly Lazy<(string Program, string[] Prefix)?> ComposeCli = new(FindCompose);
    private static readonly Lazy<string?> Engine = new(() =>
        Tool.Succeeds("docker", "info") ? null : "no Docker engine answers (`docker info` failed); .ci/run installs docker.io and starts dockerd");
    private static readonly Lazy<(string? Tag, string? Why)> Base = new(FindBaseImage);

    /// <summary>The Compose command (program and leading arguments), or null when neither version is installed.</summary>
    public static (string Program, string[] Prefix)? Compose => ComposeCli.Value;

    /// <summary>The tag of the local base image (Debian and the .NET runtime) the project's image is built on.</summary>
    public static string BaseImage => Base.Value.Tag ?? throw new InvalidOperationException(Base.Value.Why);

    /// <summary>Why the compose file cannot be run here, or null when it can.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "the Docker test runs Linux containers on a Linux host";
        if (Engine.Value is { } noEngine) return noEngine;
        if (Compose is null) return "neither Compose v1 (`docker-compose`) nor v2 (`docker compose`) is installed";
        if (!File.Exists(Path.Combine(DataSpec.DefaultIdxDirectory, MnistLayout.TrainImages + ".gz")))
            return $"{DataSpec.DefaultIdxDirectory} not found: install the Debian package dataset-fashion-mnist";
        return Base.Value.Why;
    }

    private static (string, string[])? FindCompose() =>
        Tool.Succeeds("docker-compose", "version") ? ("docker-compose", [])
        : Tool.Succeeds("docker", "compose", "version") ? ("docker", ["compose"])
        : null;

    private static (string?, string?) FindBaseImage()
    {
        string script = Path.Combine(Distributed.ProcessHarness.RepoRoot, ".ci", "docker-base-image");
        var (code, output) = Tool.Run(script, ["--tag"]);
        if (code != 0) return (null, $"{script} --tag failed: {output.Trim()}");
        string tag = output.Trim();
        return Tool.Succeeds("docker", "image", "inspect", tag)
            ? (tag, null)
            : (null, $"the base image {tag} is absent; `.ci/docker-base-image` makes it (about a minute), as .ci/run does");
    }
}

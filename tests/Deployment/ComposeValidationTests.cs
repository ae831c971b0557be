// `docker compose config` validates docker-compose.yml against compose's own schema without an engine; skipped
// with the reason where the compose plugin is not installed.
namespace DistTrain.Tests.Deployment;

public sealed class ComposeValidationTests
{
    [DockerComposeFact]
    public void DockerComposeAcceptsTheFile()
    {
        string root = Distributed.ProcessHarness.RepoRoot;
        var (code, output) = Tool.Run("docker", ["compose", "--project-directory", root, "-f", ComposeFile.DefaultPath,
            "--profile", "remote", "config", "--quiet", "--no-interpolate"], TimeSpan.FromSeconds(60));
        Assert.True(code == 0, output);
    }
}

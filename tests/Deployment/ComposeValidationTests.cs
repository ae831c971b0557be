// `config` validates docker-compose.yml against Compose's own schema without an engine, with v1's `docker-compose`
// where installed (it rejects keys only v2 knows, such as a top-level `name:`), else v2's `docker compose`; skipped
// with the reason where neither is installed.
namespace DistTrain.Tests.Deployment;

public sealed class ComposeValidationTests
{
    [DockerComposeFact]
    public void DockerComposeAcceptsTheFile()
    {
        var (program, prefix) = DockerEngine.Compose!.Value;
        string root = Distributed.ProcessHarness.RepoRoot;
        // Interpolated with the file's own defaults (the variables are unset): v1 checks a port mapping only after
        // substitution.
        var (code, output) = Tool.Run(program, [.. prefix, "--project-directory", root, "-f", ComposeFile.DefaultPath,
            "--profile", "remote", "config", "--quiet"], TimeSpan.FromSeconds(60), ComposeFile.VariablesIn(ComposeFile.DefaultPath).ToDictionary(v => v, _ => (string?)null));
        Assert.True(code == 0, output);
    }
}

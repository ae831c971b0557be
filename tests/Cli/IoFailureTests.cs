// Resources and I/O at the command line: a checkpoint that does not fit the config is refused without touching any
// checkpoint; a full disk, paths that cannot be written or read and absurd sizes are one `error:` line, exit 2.
using System.Diagnostics;
using System.Security.Cryptography;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Cli;

public class IoFailureTests
{
    private static void AssertOneErrorLine(int code, string stderr, params string[] mustContain)
    {
        Assert.True(code == 2, $"exit {code}: {stderr}");
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 1, stderr);
        foreach (string text in mustContain) Assert.Contains(text, errors[0]);
        Assert.DoesNotContain("   at ", stderr);
    }

    private static Dictionary<string, string> Hashes(string directory) =>
        Directory.EnumerateFiles(directory).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Fact]
    public void ResumingWithAChangedModelIsRefusedAndKeepsEveryCheckpoint()
    {
        using var dir = new TempDirectory();
        string checkpoints = dir.File("checkpoints");
        var config = ConfigFiles.Blobs(epochs: 2);
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config), "--checkpoint-dir", checkpoints, "--checkpoint-every", "10"]);
        Assert.True(code == 0, stderr);
        var before = Hashes(checkpoints);
        Assert.NotEmpty(before);

        config["model"]!["layers"]![0]!["units"] = 32;
        (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config, "changed.json"), "--checkpoint-dir", checkpoints, "--resume"]);

        AssertOneErrorLine(code, stderr, "made with other settings", "model: checkpoint 10-24(relu)-4 softmax_cross_entropy, config 10-32(relu)-4 softmax_cross_entropy");
        Assert.Equal(before, Hashes(checkpoints));
    }

    [Fact]
    public void AFreshRunIntoAnotherRunsCheckpointsIsRefusedAndDeletesNone()
    {
        using var dir = new TempDirectory();
        string checkpoints = dir.File("checkpoints");
        string config = ConfigFiles.Write(dir.Path, ConfigFiles.Blobs(epochs: 3));
        var (code, _, stderr) = CliProcess.Run(["train", "--config", config, "--checkpoint-dir", checkpoints]);
        Assert.True(code == 0, stderr);
        var before = Hashes(checkpoints);

        // Without --resume its checkpoints would land on the earlier run's steps.
        (code, _, stderr) = CliProcess.Run(["train", "--config", config, "--checkpoint-dir", checkpoints, "--epochs", "1"]);
        AssertOneErrorLine(code, stderr, "holds checkpoints of an earlier run (up to step 96); continue it with --resume");
        Assert.Equal(before, Hashes(checkpoints));
    }

    [Theory]
    [InlineData("--save", "a-file/w.safetensors", "cannot create its directory")]
    [InlineData("--checkpoint-dir", "a-file/checkpoints", "cannot create its directory")]
    [InlineData("--metrics-out", "a-file/metrics.jsonl", "cannot open for writing")]
    [InlineData("--step-log", "a-file/steps.jsonl", "cannot open for writing")]
    public void UnwritableOutputsAreOneLine(string flag, string path, string expected)
    {
        // A path below a regular file cannot be created, whoever runs the test (root ignores permission bits).
        using var dir = new TempDirectory();
        dir.Write("a-file", "not a directory");
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, ConfigFiles.Blobs(epochs: 1)), flag, dir.File(path)]);
        AssertOneErrorLine(code, stderr, dir.File(path), expected);
    }

    [Fact]
    public void AnUnreadableConfigIsOneLine()
    {
        // Reading /proc/self/mem from offset 0 fails with EIO for every user: a file that exists but cannot be read.
        var (code, _, stderr) = CliProcess.Run(["train", "--config", "/proc/self/mem"]);
        AssertOneErrorLine(code, stderr, "/proc/self/mem: cannot read the config");
    }

    [Theory]
    [InlineData("--threads", "100000", "training.threads must be 0..1024")]
    [InlineData("--epochs", "99999999999", "training.epochs")]
    public void AbsurdSizesAreOneLine(string flag, string value, string expected)
    {
        using var dir = new TempDirectory();
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, ConfigFiles.Blobs()), flag, value]);
        AssertOneErrorLine(code, stderr, expected);
    }

    [Fact]
    public void ALayerTooLargeForOneBufferIsOneLine()
    {
        using var dir = new TempDirectory();
        var config = ConfigFiles.Blobs();
        config["model"]!["layers"]![0]!["units"] = 2_000_000_000;
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config)]);
        AssertOneErrorLine(code, stderr, "by layer 0 (2000000000 units); one buffer holds at most");
    }

    [RootFact]
    public void AFullDiskIsOneLine()
    {
        using var dir = new TempDirectory();
        string mount = dir.File("small");
        Directory.CreateDirectory(mount);
        // A 64 KiB tmpfs of the test's own, removed in the finally.
        Assert.True(Run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount), "mount -t tmpfs failed");
        try
        {
            var config = ConfigFiles.Blobs(epochs: 1);
            config["model"]!["layers"]![0]!["units"] = 4_000; // ≈ 60k parameters: 240 KiB of weights
            var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, config), "--save", Path.Combine(mount, "w.safetensors")]);
            AssertOneErrorLine(code, stderr, Path.Combine(mount, "w.safetensors"), "cannot write");
            Assert.Empty(Directory.EnumerateFileSystemEntries(mount)); // the partial temporary file is gone
        }
        finally
        {
            Run("umount", mount);
        }
    }

    private static bool Run(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        if (!process.WaitForExit(10_000)) { process.Kill(); return false; }
        return process.ExitCode == 0;
    }
}

/// <summary>A fact that needs root (mounting a file system); skipped with the reason otherwise. CI runs as root.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!Environment.IsPrivilegedProcess) Skip = "needs root to mount a tmpfs (CI runs as root)";
    }
}

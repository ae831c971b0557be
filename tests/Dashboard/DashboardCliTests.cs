// The dashboard's flags at the command line: a busy port costs the dashboard, never the run; --no-dashboard starts
// none; --log-json turns the run's events into JSON log records while stdout keeps its epoch rows; bad values are
// one error line.
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using DistTrain.Tests.Cli;
using DistTrain.Tests.Infrastructure;

namespace DistTrain.Tests.Dashboard;

public class DashboardCliTests
{
    [Fact]
    public void BusyPortLeavesTrainingRunning()
    {
        using var dir = new TempDirectory();
        using var occupied = new TcpListener(IPAddress.Loopback, 0);
        occupied.Start();
        int port = ((IPEndPoint)occupied.LocalEndpoint).Port;
        var (code, stdout, stderr) = CliProcess.Run(
            ["train", "--config", ConfigFiles.Write(dir.Path, ConfigFiles.Blobs(epochs: 2)), "--dashboard-port", port.ToString()]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"cannot listen on 127.0.0.1:{port}", stderr);
        Assert.Contains("epoch   2/2", stdout);
    }

    [Fact]
    public void LogJsonWritesStructuredRecordsAndNoDashboardStartsNone()
    {
        using var dir = new TempDirectory();
        var (code, stdout, stderr) = CliProcess.Run(
            ["train", "--config", ConfigFiles.Write(dir.Path, ConfigFiles.Blobs(epochs: 2)), "--no-dashboard", "--log-json"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("epoch   2/2", stdout); // the console rows are unchanged
        var records = stderr.Split('\n').Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var epochs = records.Where(r => r.GetProperty("Category").GetString() == "DistTrain.Training"
            && r.GetProperty("State").TryGetProperty("Epoch", out _)).ToList();
        Assert.Equal(2, epochs.Count);
        Assert.Equal(2, epochs[1].GetProperty("State").GetProperty("Epoch").GetInt32());
        Assert.DoesNotContain(records, r => r.GetProperty("Message").GetString()!.StartsWith("dashboard:", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--dashboard-port", "70000", "--dashboard-port")]
    [InlineData("--dashboard-port", "x", "--dashboard-port")]
    [InlineData("--dashboard-bind", "not-an-ip", "--dashboard-bind")]
    [InlineData("--grad-explode-above", "-1", "--grad-explode-above")]
    public void BadDashboardFlagsAreOneErrorLine(string flag, string value, string named)
    {
        using var dir = new TempDirectory();
        var (code, _, stderr) = CliProcess.Run(["train", "--config", ConfigFiles.Write(dir.Path, ConfigFiles.Blobs()), flag, value]);
        Assert.Equal(2, code);
        var errors = stderr.Split('\n').Where(l => l.StartsWith("error", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        Assert.Contains(named, errors[0]);
        Assert.DoesNotContain("   at ", stderr);
    }
}

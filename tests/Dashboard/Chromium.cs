// Debian's chromium driven by Playwright for .NET (its node driver ships inside the NuGet package, so nothing is
// downloaded). Browser tests are skipped with a reason where chromium is not installed.
using Microsoft.Playwright;

namespace DistTrain.Tests.Dashboard;

public static class Chromium
{
    public const string ExecutablePath = "/usr/bin/chromium";

    public static bool Installed => File.Exists(ExecutablePath);

    public static async Task<(IPlaywright Playwright, IBrowser Browser)> LaunchAsync()
    {
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Timeout = 30_000,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"],
        });
        return (playwright, browser);
    }

    /// <summary>Where screenshots go: artifacts/ in the test output directory.</summary>
    public static string ArtifactPath(string name)
    {
        string directory = Path.Combine(AppContext.BaseDirectory, "artifacts");
        Directory.CreateDirectory(directory);
        return Path.Combine(directory, name);
    }
}

/// <summary>A fact that needs /usr/bin/chromium (apt-get install -y chromium; .ci/run does it).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (!Chromium.Installed) Skip = $"{Chromium.ExecutablePath} not found: apt-get install -y chromium (.ci/run installs it)";
    }
}

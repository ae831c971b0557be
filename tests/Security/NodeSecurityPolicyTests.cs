// The start-up policy and the settings' precedence: no token is only allowed on loopback (with a warning), flags
// win over variables, a token file over an inline token, and incomplete TLS settings are one clear error.
using DistTrain.Core;
using DistTrain.Protos.Security;

namespace DistTrain.Tests.Security;

public class NodeSecurityPolicyTests
{
    private const string Secret = "fedcba9876543210fedcba9876543210";

    private static SecurityOptions Options(Dictionary<string, string>? flags = null, Dictionary<string, string>? environment = null) =>
        SecurityOptions.Read(f => flags?.GetValueOrDefault(f), v => environment?.GetValueOrDefault(v));

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("127.5.6.7", true)]
    [InlineData("localhost", true)]
    [InlineData("[::1]", true)]
    [InlineData("::1", true)]
    [InlineData("0.0.0.0", false)]
    [InlineData("[::]", false)]
    [InlineData("*", false)]
    [InlineData("10.214.0.10", false)]
    [InlineData("coordinator", false)]
    public void LoopbackMeansLoopbackOnly(string host, bool loopback) => Assert.Equal(loopback, NodeSecurity.IsLoopback(host));

    [Fact]
    public void WithoutATokenOnlyLoopbackIsAllowedAndItWarns()
    {
        var warnings = new List<string>();
        var open = NodeSecurity.Create(Options(), "127.0.0.1", "worker", warnings.Add);
        Assert.Null(open.Token);
        Assert.Contains("NO shared token", Assert.Single(warnings));

        var refused = Assert.Throws<UserInputException>(() => NodeSecurity.Create(Options(), "0.0.0.0", "worker", warnings.Add));
        Assert.Contains("DISTTRAIN_TOKEN_FILE", refused.Message);

        var secured = NodeSecurity.Create(Options(environment: new() { ["DISTTRAIN_TOKEN"] = Secret }), "0.0.0.0", "worker", warnings.Add);
        Assert.True(secured.Token!.Matches("Bearer " + Secret));
        Assert.Single(warnings);
        Assert.DoesNotContain(Secret, secured.ToString());
    }

    [Fact]
    public void FlagsWinOverVariablesAndAFileOverAnInlineToken()
    {
        using var dir = new Infrastructure.TempDirectory();
        string fromFile = dir.Write("token", "file-secret-0123456789"), fromVariable = dir.Write("token2", "variable-secret-0123456789");
        var options = Options(new() { ["--token-file"] = fromFile },
            new() { ["DISTTRAIN_TOKEN_FILE"] = fromVariable, ["DISTTRAIN_TOKEN"] = Secret, ["DISTTRAIN_TLS_MUTUAL"] = "false" });
        var security = NodeSecurity.Create(options, "0.0.0.0", "coordinator", _ => { });
        Assert.True(security.Token!.Matches("Bearer file-secret-0123456789"));
        Assert.Equal(fromFile, security.Token.Source);

        var byVariable = NodeSecurity.Create(Options(environment: new() { ["DISTTRAIN_TOKEN_FILE"] = fromVariable, ["DISTTRAIN_TOKEN"] = Secret }),
            "0.0.0.0", "coordinator", _ => { });
        Assert.True(byVariable.Token!.Matches("Bearer variable-secret-0123456789"));
        Assert.DoesNotContain(Secret, options.ToString());
    }

    [Fact]
    public void IncompleteTlsSettingsAreOneClearError()
    {
        Assert.Contains("go together", Assert.Throws<UserInputException>(() =>
            NodeSecurity.Create(Options(new() { ["--tls-cert"] = "/nonexistent.pem" }), "127.0.0.1", "worker", _ => { })).Message);
        Assert.Contains("--tls-mutual needs", Assert.Throws<UserInputException>(() =>
            NodeSecurity.Create(Options(new() { ["--tls-mutual"] = "true" }), "127.0.0.1", "worker", _ => { })).Message);
        Assert.Contains("true or false", Assert.Throws<UserInputException>(() => Options(new() { ["--tls-mutual"] = "maybe" })).Message);
        Assert.Contains("cannot load", Assert.Throws<UserInputException>(() =>
            NodeSecurity.Create(Options(new() { ["--tls-cert"] = "/nonexistent.pem", ["--tls-key"] = "/nonexistent.key" }),
                "127.0.0.1", "worker", _ => { })).Message);
    }
}

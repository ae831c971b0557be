// The token itself: exact matching under the Bearer scheme, refusal of near misses, other lengths and other
// deployments' tokens, clear errors that name the source and never the value, and a redacted ToString.
using DistTrain.Core;
using DistTrain.Protos.Security;

namespace DistTrain.Tests.Security;

public class SharedTokenTests
{
    private const string Secret = "0123456789abcdef0123456789abcdef";

    [Fact]
    public void MatchesOnlyTheExactSecretUnderTheBearerScheme()
    {
        var token = SharedToken.Parse(Secret, "test");
        Assert.True(token.Matches("Bearer " + Secret));
        Assert.True(token.Matches("bearer " + Secret)); // the scheme is case-insensitive (RFC 7235)
        Assert.False(token.Matches(null));
        Assert.False(token.Matches(""));
        Assert.False(token.Matches(Secret));
        Assert.False(token.Matches("Basic " + Secret));
        Assert.False(token.Matches("Bearer " + Secret[..^1]));
        Assert.False(token.Matches("Bearer " + Secret + "0"));
        Assert.False(token.Matches("Bearer " + Secret.ToUpperInvariant()));
        Assert.False(token.Matches("Bearer  " + Secret));
        Assert.False(token.Matches("Bearer " + new string('x', 100_000)));
        Assert.False(token.Matches("Bearer " + SecureCluster.NewToken())); // another deployment's
        Assert.Equal("Bearer " + Secret, token.AuthorizationHeader);
    }

    [Fact]
    public void FileContentIsTrimmedAndErrorsNeverShowTheValue()
    {
        using var dir = new Infrastructure.TempDirectory();
        var fromFile = SharedToken.FromFile(dir.Write("token", Secret + "\r\n"));
        Assert.True(fromFile.Matches("Bearer " + Secret));
        Assert.DoesNotContain(Secret, fromFile.ToString());

        var shortOne = Assert.Throws<UserInputException>(() => SharedToken.Parse("short-secret", "DISTTRAIN_TOKEN"));
        Assert.Contains("DISTTRAIN_TOKEN", shortOne.Message);
        Assert.DoesNotContain("short-secret", shortOne.Message);
        var spaced = Assert.Throws<UserInputException>(() => SharedToken.Parse("0123456789 abcdef0123", "x"));
        Assert.DoesNotContain("0123456789", spaced.Message);
        Assert.Throws<UserInputException>(() => SharedToken.FromFile(dir.File("missing")));
        Assert.Throws<UserInputException>(() => SharedToken.FromFile(dir.Write("huge", new string('a', 10_000))));
    }

    [Fact]
    public void RandomTokensDiffer()
    {
        var a = SharedToken.Random();
        var b = SharedToken.Random();
        Assert.False(a.Matches(b.AuthorizationHeader));
        Assert.True(a.Matches(a.AuthorizationHeader));
    }
}

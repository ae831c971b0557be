// Text from a peer reaches the log as one bounded line: newlines and terminal escapes are replaced, length is capped.
using DistTrain.Protos;

namespace DistTrain.Tests.Security;

public class PeerTextTests
{
    [Theory]
    [InlineData(null, "")]
    [InlineData("plain text", "plain text")]
    [InlineData("forged\nerror: line", "forged?error: line")]
    [InlineData("\u001b[2Jcleared", "?[2Jcleared")]
    [InlineData("tab\there\r", "tab?here?")]
    public void ControlCharactersAreReplaced(string? text, string expected) => Assert.Equal(expected, PeerText.Printable(text));

    [Fact]
    public void LongTextIsCut()
    {
        string printed = PeerText.Printable(new string('x', 10_000));
        Assert.Equal(PeerText.DefaultMaxLength + 1, printed.Length);
        Assert.EndsWith("…", printed);
    }
}

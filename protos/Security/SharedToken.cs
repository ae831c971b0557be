// A deployment's shared secret. Only SHA-256 digests are compared, in constant time, so neither the length nor a
// prefix of the secret leaks through timing; no member ever prints the secret (ToString is redacted).
using System.Security.Cryptography;
using System.Text;
using DistTrain.Core;

namespace DistTrain.Protos.Security;

public sealed class SharedToken
{
    /// <summary>Shorter secrets are guessable; `openssl rand -hex 32` gives 64 characters.</summary>
    public const int MinimumLength = 16;
    private const int MaximumLength = 4096;
    private const string Scheme = "Bearer ";

    private readonly byte[] _digest;
    private readonly string _header;

    private SharedToken(string secret, string source)
    {
        _digest = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
        _header = Scheme + secret;
        Source = source;
    }

    /// <summary>Where the secret came from ("DISTTRAIN_TOKEN", a file path), for logs.</summary>
    public string Source { get; }

    /// <summary>The `authorization` header value this node sends.</summary>
    public string AuthorizationHeader => _header;

    /// <summary>
    /// Checks a secret: surrounding whitespace (the newline `echo` leaves in a file) is dropped; what remains must be
    /// 16..4096 visible ASCII characters, as an HTTP header value needs. Errors name the source, never the value.
    /// </summary>
    public static SharedToken Parse(string secret, string source)
    {
        string trimmed = secret.Trim();
        if (trimmed.Length < MinimumLength || trimmed.Length > MaximumLength)
            throw new UserInputException($"the shared token from {source} must be {MinimumLength}..{MaximumLength} characters, found {trimmed.Length} (make one with `openssl rand -hex 32`)");
        if (trimmed.Any(c => c is < '!' or > '~'))
            throw new UserInputException($"the shared token from {source} may only contain visible ASCII characters (no spaces)");
        return new SharedToken(trimmed, source);
    }

    public static SharedToken FromFile(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new UserInputException($"token file {path} not found");
            if (info.Length > MaximumLength + 2) throw new UserInputException($"token file {path} is {info.Length} bytes; a token is at most {MaximumLength}");
            return Parse(File.ReadAllText(path), path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"cannot read token file {path}: {e.Message}");
        }
    }

    /// <summary>A fresh random secret, for a coordinator and the in-process workers only it talks to.</summary>
    public static SharedToken Random() => new(Convert.ToHexString(RandomNumberGenerator.GetBytes(32)), "a random in-process secret");

    /// <summary>True when <paramref name="authorization"/> is "Bearer &lt;this secret&gt;"; constant time in the secret.</summary>
    public bool Matches(string? authorization)
    {
        if (authorization is null || authorization.Length > Scheme.Length + MaximumLength ||
            !authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
            return false;
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(authorization, Scheme.Length, authorization.Length - Scheme.Length), digest);
        return CryptographicOperations.FixedTimeEquals(digest, _digest);
    }

    public override string ToString() => $"shared token from {Source} (redacted)";
}

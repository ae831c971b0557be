// A worker's per-process credential: 32 random bytes it gives the coordinator in its (token-checked) Register; the
// coordinator sends them back as x-disttrain-session on every call to that worker, so only it can drive the worker.
using System.Security.Cryptography;

namespace DistTrain.Protos.Security;

public sealed class SessionSecret
{
    public const int Bytes = 32;
    /// <summary>The metadata key (an HTTP/2 header, base64 value) that carries the secret on Worker-service calls.</summary>
    public const string Header = "x-disttrain-session";

    private readonly byte[] _value;
    private readonly byte[] _digest;

    private SessionSecret(byte[] value)
    {
        _value = value;
        _digest = SHA256.HashData(value);
    }

    /// <summary>A fresh secret from the system's cryptographic generator.</summary>
    public static SessionSecret Generate() => new(RandomNumberGenerator.GetBytes(Bytes));

    /// <summary>The secret a worker sent; null unless it is exactly <see cref="Bytes"/> long.</summary>
    public static SessionSecret? From(ReadOnlySpan<byte> value) => value.Length == Bytes ? new(value.ToArray()) : null;

    public ReadOnlySpan<byte> Value => _value;
    public string HeaderValue => Convert.ToBase64String(_value);

    /// <summary>
    /// Whether <paramref name="headerValue"/> carries this secret. Digests are compared in fixed time, so neither the
    /// comparison's duration nor the header's length tells a caller how much of a guess was right.
    /// </summary>
    public bool Matches(string? headerValue)
    {
        Span<byte> presented = stackalloc byte[Bytes];
        if (headerValue is null || !Convert.TryFromBase64String(headerValue, presented, out int length) || length != Bytes)
            return false;
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(presented), _digest);
    }

    /// <summary>A handler that adds this secret to every request a channel sends, unary or streaming.</summary>
    public HttpMessageHandler Attach(HttpMessageHandler inner) => new Sender(HeaderValue, inner);

    private sealed class Sender(string value, HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Remove(Header);
            request.Headers.TryAddWithoutValidation(Header, value);
            return base.SendAsync(request, cancellationToken);
        }
    }
}

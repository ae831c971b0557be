// The client half of the token check: adds `authorization: Bearer …` to every HTTP/2 request a channel sends, so
// each RPC, unary or streaming, carries it without every call site remembering to.
namespace DistTrain.Protos.Security;

public sealed class BearerTokenHandler(SharedToken token, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Remove("authorization");
        request.Headers.TryAddWithoutValidation("authorization", token.AuthorizationHeader);
        return base.SendAsync(request, cancellationToken);
    }
}

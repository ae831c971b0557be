// The dashboard's page, script and stylesheet, embedded in the disttrain assembly (no build step, no CDN, nothing
// to copy next to the binary) and served from memory with an ETag.
using System.Reflection;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;

namespace DistTrain.Coordinator.Dashboard;

public sealed class StaticAssets
{
    private const string Prefix = "wwwroot/";
    private readonly Dictionary<string, (byte[] Content, string ContentType, string ETag)> _files = new(StringComparer.Ordinal);

    public StaticAssets()
    {
        var assembly = Assembly.GetExecutingAssembly();
        foreach (string name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            byte[] content = copy.ToArray();
            string etag = "\"" + Convert.ToHexString(SHA256.HashData(content))[..16] + "\"";
            _files[name[Prefix.Length..]] = (content, ContentTypeOf(name), etag);
        }
    }

    public IEnumerable<string> Names => _files.Keys;

    public IResult Serve(HttpContext context, string name)
    {
        if (!_files.TryGetValue(name, out var file)) return Results.NotFound();
        context.Response.Headers.ETag = file.ETag;
        context.Response.Headers.CacheControl = "no-cache";
        if (context.Request.Headers.IfNoneMatch == file.ETag) return Results.StatusCode(StatusCodes.Status304NotModified);
        return Results.Bytes(file.Content, file.ContentType);
    }

    private static string ContentTypeOf(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        _ => "application/octet-stream",
    };
}

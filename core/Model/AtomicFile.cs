// Crash-safe file replacement: write a temporary file in the same directory, flush it to disk (fsync), then
// rename over the target, so a reader sees either the old complete file or the new complete file, never a torn one.
namespace DistTrain.Core.Model;

public static class AtomicFile
{
    /// <summary>
    /// Replaces <paramref name="path"/> with what <paramref name="write"/> writes. A file system failure (no space, no
    /// permission, a missing or unwritable directory) is a one-line <see cref="UserInputException"/> naming the path.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full)!;
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"{path}: cannot create its directory {directory}: {e.Message}", e);
        }
        string temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e)
        {
            try { File.Delete(temp); } catch (IOException) { }
            if (e is IOException or UnauthorizedAccessException)
                throw new UserInputException($"{path}: cannot write: {e.Message}", e);
            throw;
        }
    }
}

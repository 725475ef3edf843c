namespace Bulwark.Server.Registry;

/// <summary>
/// An exclusive lock on one model's folder across processes (a CLI and a server may share the
/// data directory): a lock file opened with no sharing, retried for a bounded time.
/// </summary>
internal sealed class RegistryLock : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private readonly FileStream _stream;

    private RegistryLock(FileStream stream) => _stream = stream;

    public static RegistryLock Acquire(string modelFolder)
    {
        Directory.CreateDirectory(modelFolder);
        var path = Path.Combine(modelFolder, ".lock");
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            try
            {
                return new RegistryLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(50);
            }
            catch (IOException e)
            {
                throw new RegistryException($"{modelFolder} is locked by another Bulwark process for over {Wait.TotalSeconds:0} s ({e.Message})");
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}

using System.Buffers;

namespace Bulwark.Engine.Memory;

/// <summary>
/// The pool for buffers that hold request data (prompt and completion bytes, token ids): arrays come
/// from <see cref="ArrayPool{T}.Shared"/> and are cleared before they go back, so an array waiting in
/// the pool never holds a finished request's text or tokens (issue 25). Every pooled buffer Bulwark
/// fills with a request's data goes through here; buffers of offsets, activations and file bytes use
/// the shared pool directly.
/// </summary>
/// <remarks>
/// Clearing costs one <c>memset</c> of the array per return: a few hundred nanoseconds for the
/// kilobyte-sized buffers of tokenization, against milliseconds of model work per request.
/// </remarks>
public static class ClearingArrayPool<T> where T : unmanaged
{
    /// <summary>An array of at least <paramref name="minimumLength"/> elements (possibly longer, possibly holding zeros only).</summary>
    public static T[] Rent(int minimumLength) => ArrayPool<T>.Shared.Rent(minimumLength);

    /// <summary>Clears the whole of <paramref name="array"/> and gives it back to the pool.</summary>
    public static void Return(T[] array)
    {
        Returning?.Invoke(array);
        ArrayPool<T>.Shared.Return(array, clearArray: true);
    }

    /// <summary>
    /// Test-only: sees every array just before it is cleared and goes back. A test reads what passed
    /// through, and keeps the arrays to read again after the request has ended.
    /// </summary>
    internal static Action<T[]>? Returning;
}

using Bulwark.Server.Backends.Upstream;

namespace Bulwark.Server.Tests.Gateway;

/// <summary>
/// <see cref="WholeBody"/>, the pooled read of an upstream's whole response, held to its slow twin (a
/// <see cref="MemoryStream"/> copy) and to the response size limit below, at and above it.
/// </summary>
public sealed class WholeBodyTests
{
    private static byte[] Bytes(int n) => Enumerable.Range(0, n).Select(i => (byte)(i * 7 + 3)).ToArray();

    private static async Task<byte[]> ReadAsync(Stream body, long? announced, long limit)
    {
        var (buffer, length) = await WholeBody.ReadAsync(body, announced, limit, CancellationToken.None);
        var copy = buffer.AsSpan(0, length).ToArray();
        WholeBody.Return(buffer, length);
        return copy;
    }

    private static async Task<byte[]> SlowTwinAsync(Stream body)
    {
        using var copy = new MemoryStream();
        await body.CopyToAsync(copy);
        return copy.ToArray();
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(1, false)]
    [InlineData(255, true)]
    [InlineData(256, false)]
    [InlineData(4097, false)]
    [InlineData(70_000, false)]
    [InlineData(70_000, true)]
    public async Task TheBodyReadIsTheBodySentWhateverItsSizeAndAnnouncement(int size, bool announce)
    {
        var sent = Bytes(size);
        var read = await ReadAsync(new MemoryStream(sent), announce ? size : null, 1 << 20);
        Assert.Equal(await SlowTwinAsync(new MemoryStream(sent)), read);
    }

    [Fact]
    public async Task ABodyDrippingAByteAtATimeGrowsTheBufferAndArrivesWhole()
    {
        var sent = Bytes(3000);
        Assert.Equal(sent, await ReadAsync(new DripStream(sent), null, 1 << 20));
    }

    [Fact]
    public async Task AnAnnouncementThatLiesLowOrHighChangesNothingButTheFirstBuffer()
    {
        var sent = Bytes(5000);
        Assert.Equal(sent, await ReadAsync(new MemoryStream(sent), 10, 1 << 20));
        Assert.Equal(sent, await ReadAsync(new MemoryStream(sent), 4000, 1 << 20));
        // A large announcement alone does not make the gateway take a large buffer.
        var (buffer, length) = await WholeBody.ReadAsync(new MemoryStream(Bytes(10)), 1L << 30, 1L << 34, CancellationToken.None);
        Assert.Equal(10, length);
        Assert.True(buffer.Length <= WholeBody.MaxFirstBuffer, $"{buffer.Length} bytes taken for a body of 10");
        WholeBody.Return(buffer, length);
    }

    [Theory]
    [InlineData(1023, true)]
    [InlineData(1024, true)]
    [InlineData(1025, false)]
    [InlineData(5000, false)]
    public async Task TheLimitHoldsBelowAtAndAboveWithOrWithoutAnAnnouncement(int size, bool fits)
    {
        foreach (var announced in new long?[] { null, size, 100 })
        {
            foreach (var body in new Func<Stream>[] { () => new MemoryStream(Bytes(size)), () => new DripStream(Bytes(size)) })
            {
                if (fits) Assert.Equal(Bytes(size), await ReadAsync(body(), announced, 1024));
                else await Assert.ThrowsAsync<UpstreamResponseTooLargeException>(() => ReadAsync(body(), announced, 1024));
            }
        }
    }

    [Fact]
    public async Task TheReadIsCancelled()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => WholeBody.ReadAsync(new DripStream(Bytes(10)), null, 1024, cancelled.Token).AsTask());
    }

    /// <summary>Gives one byte per read, as a slow upstream might.</summary>
    private sealed class DripStream(byte[] data) : Stream
    {
        private int _at;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _at; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_at == data.Length || buffer.Length == 0) return 0;
            buffer[0] = data[_at++];
            return 1;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return ValueTask.FromResult(Read(buffer.Span));
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

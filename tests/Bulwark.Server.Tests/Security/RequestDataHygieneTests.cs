using System.Collections.Concurrent;
using System.Text;
using Bulwark.Engine.Memory;
using Bulwark.Server.Hosting;
using Bulwark.Server.Security;
using Bulwark.Server.Tests.Api;
using Bulwark.Server.Tests.Hosting;

namespace Bulwark.Server.Tests.Security;

/// <summary>
/// Issue 25: after a request ends, none of the buffers it passed through — Kestrel's pool (request
/// and response bytes) and the pool our parsers and tokenizers use — holds its prompt or its
/// completion. Each test first proves the text passed through those pools, then reads them.
/// </summary>
public sealed class RequestDataHygieneTests
{
    private const string Completion = "abcdefghijklmnopqrstuvwxyz"; // what the alphabet model writes after a digit

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;

    [Fact]
    public async Task AfterARequestNoPooledBufferHoldsItsPromptOrCompletion()
    {
        var prompt = "my passphrase is correct-horse-battery-staple-" + Guid.NewGuid().ToString("N") + " 7";
        var promptBytes = Encoding.UTF8.GetBytes(prompt);
        var completionBytes = Encoding.UTF8.GetBytes(Completion);
        var kestrelSaw = new ConcurrentBag<string>();
        var parserBuffers = new ConcurrentBag<byte[]>();
        Action<byte[]> onBlock = b =>
        {
            if (Contains(b, promptBytes)) kestrelSaw.Add("prompt");
            if (Contains(b, completionBytes)) kestrelSaw.Add("completion");
        };
        Action<byte[]> onArray = a => { if (Contains(a, promptBytes)) parserBuffers.Add(a); };
        ClearingMemoryPool.Returning += onBlock;
        ClearingArrayPool<byte>.Returning += onArray;
        try
        {
            await using var server = await RunningServer.StartAsync(AlphabetModel.Backend());
            using (var client = server.Client(server.ApiKey))
            {
                var body = $$"""{"model":"alphabet","max_tokens":26,"temperature":0,"messages":[{"role":"user","content":"{{prompt}}"}]}""";
                var (status, response, _) = await RawHttp.PostJsonAsync(client, "v1/chat/completions", body);
                Assert.Equal(200, status);
                Assert.Equal(Completion, response.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
            }
            server.Http.Dispose(); // close every connection: Kestrel gives its blocks back
            var pools = server.Get<ClearingMemoryPoolFactory>().Created;
            Assert.NotEmpty(pools);

            // The request went through Kestrel's pool and the body parser's pool...
            Assert.True(await Eventually.WithinAsync(TimeSpan.FromSeconds(10), () =>
                Task.FromResult(kestrelSaw.Contains("prompt") && kestrelSaw.Contains("completion"))), "the text never passed through Kestrel's pool");
            Assert.NotEmpty(parserBuffers);
            // ...and nothing waiting in either holds it now.
            foreach (var block in pools.SelectMany(p => p.PooledBlocks()))
            {
                Assert.False(Contains(block, promptBytes), "a pooled Kestrel block holds the prompt");
                Assert.False(Contains(block, completionBytes), "a pooled Kestrel block holds the completion");
            }
            Assert.All(parserBuffers, a => Assert.False(Contains(a, promptBytes), "a pooled parser buffer holds the prompt"));
        }
        finally
        {
            ClearingMemoryPool.Returning -= onBlock;
            ClearingArrayPool<byte>.Returning -= onArray;
        }
    }
}

/// <summary>The pool's own contract: blocks come back cleared, once, and the pool stays bounded.</summary>
public sealed class ClearingMemoryPoolTests
{
    [Fact]
    public void AReturnedBlockIsClearedAndReusedOnlyOnce()
    {
        using var pool = new ClearingMemoryPool();
        var owner = pool.Rent(100);
        Assert.Equal(ClearingMemoryPool.BlockSize, owner.Memory.Length);
        owner.Memory.Span.Fill(0x5A);
        var array = pool.PooledBlocks().ToArray();
        Assert.Empty(array);
        owner.Dispose();
        owner.Dispose(); // a second dispose must not put the block in the pool twice
        var pooled = Assert.Single(pool.PooledBlocks());
        Assert.True(pooled.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the returned block was not cleared");
        Assert.Throws<ObjectDisposedException>(() => owner.Memory);
        using var again = pool.Rent();
        Assert.Empty(pool.PooledBlocks());
        Assert.Equal(ClearingMemoryPool.BlockSize, again.Memory.Length);
    }

    [Theory]
    [InlineData(ClearingMemoryPool.BlockSize - 1, true)]
    [InlineData(ClearingMemoryPool.BlockSize, true)]
    [InlineData(ClearingMemoryPool.BlockSize + 1, false)]
    public void ABlockIsAtMostTheBlockSize(int size, bool served)
    {
        using var pool = new ClearingMemoryPool();
        if (served) pool.Rent(size).Dispose();
        else Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(size));
    }

    [Fact]
    public void ThePoolKeepsAtMostItsLimitOfIdleBlocks()
    {
        using var pool = new ClearingMemoryPool(maxPooledBlocks: 3);
        var owners = Enumerable.Range(0, 4).Select(_ => pool.Rent()).ToList();
        owners.Take(2).ToList().ForEach(o => o.Dispose());
        Assert.Equal(2, pool.PooledBlocks().Count()); // below
        owners[2].Dispose();
        Assert.Equal(3, pool.PooledBlocks().Count()); // at
        owners[3].Dispose();
        Assert.Equal(3, pool.PooledBlocks().Count()); // above: the fourth goes to the GC
    }
}

/// <summary>The HMAC secret lives in one pinned array that disposal zeroes.</summary>
public sealed class ApiKeyHasherSecretTests
{
    [Fact]
    public void DisposalZeroesTheSecretAndRefusesFurtherUse()
    {
        var secret = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var hasher = new ApiKeyHasher(secret);
        secret.AsSpan().Clear(); // the hasher keeps its own copy
        var hash = hasher.Hash("bw_example");
        Assert.True(hasher.Verify("bw_example", Convert.FromBase64String(hash)));
        Assert.Equal(Enumerable.Range(1, 32).Select(i => (byte)i), hasher.HeldSecret.ToArray());

        hasher.Dispose();
        Assert.True(hasher.HeldSecret.IndexOfAnyExcept((byte)0) < 0, "the secret was not zeroed");
        Assert.Throws<ObjectDisposedException>(() => hasher.Hash("bw_example"));
    }
}

using System.Diagnostics;
using System.Runtime.InteropServices;
using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Bench;

/// <summary>
/// Matmul throughput of each weight type on each instruction set: a GEMV (decode: weight bytes
/// read per second, to compare with the memory roofline) and a GEMM over many tokens (prefill:
/// multiply-adds per second).
/// </summary>
internal static unsafe class KernelBench
{
    public static int Run(string[] args)
    {
        var a = new BenchArgs(args, "cpu-time");
        _cpuTime = a.Flag("cpu-time");
        var threads = a.Int("threads", 2, 1, 256);
        var rows = a.Int("rows", 5632, 1, 1 << 20);
        var columns = a.Int("cols", 2048, 32, 1 << 20);
        var tokens = a.Int("tokens", 128, 1, 4096);
        var only = a.String("isas", "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(i => Enum.Parse<InstructionSet>(i, ignoreCase: true)).ToHashSet();
        if (columns % 32 != 0) throw new ArgumentException($"--cols must be a multiple of 32; got {columns}");
        using var pool = new WorkerPool(threads);
        var x = (float*)NativeMemory.AlignedAlloc((nuint)((long)tokens * columns * 4), 64);
        var y = (float*)NativeMemory.AlignedAlloc((nuint)((long)tokens * rows * 4), 64);
        var random = new Random(1);
        for (long i = 0; i < (long)tokens * columns; i++) x[i] = (float)(random.NextDouble() * 2 - 1);

        Console.WriteLine($"[{rows} x {columns}] weights, {threads} threads; GEMV over 1 token, GEMM over {tokens}");
        Console.WriteLine($"{"type",-5} {"isa",-9} {"GEMV GB/s",10} {"GEMM GMAC/s",12}");
        foreach (var type in a.String("types", "q8_0,q4_0,f16,bf16,f32").Split(',').Select(t => Enum.Parse<GgmlType>(t, ignoreCase: true)))
        {
            var rowBytes = GgmlTypes.ByteSize(type, columns);
            var bytes = rowBytes * rows;
            var w = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            FillWeights(type, w, bytes, random);
            // As the model runs them: F16 rows with no infinity or NaN through the scaled conversion
            // (F16ScaledRow) below MatMul.WidenFrom tokens; "exact-cvt" is the rebiasing conversion they
            // took before (GEMM columns equal: many tokens widen rows exactly once either way).
            var finite = type == GgmlType.F16 && HalfKernels.AllFinite((ushort*)w, (long)rows * columns, pool);
            foreach (var isa in Enum.GetValues<InstructionSet>().Where(i => KernelIsa.IsSupported(i) && (only.Count == 0 || only.Contains(i))))
            {
                if (isa == InstructionSet.Scalar && rows * (long)columns > 4_000_000) continue; // minutes, not seconds
                var gemv = Time(() => MatMul.Apply(type, w, rowBytes, rows, columns, x, y, 1, isa, pool, finite), 0.5);
                var gemm = Time(() => MatMul.Apply(type, w, rowBytes, rows, columns, x, y, tokens, isa, pool, finite), 1.0);
                Console.WriteLine($"{type,-5} {isa,-9} {bytes / gemv / 1e9,10:F1} {(double)rows * columns * tokens / gemm / 1e9,12:F1}");
                if (!finite || isa != KernelIsa.Detected) continue;
                gemv = Time(() => MatMul.Apply(type, w, rowBytes, rows, columns, x, y, 1, isa, pool), 0.5);
                gemm = Time(() => MatMul.Apply(type, w, rowBytes, rows, columns, x, y, tokens, isa, pool), 1.0);
                Console.WriteLine($"{type,-5} {"exact-cvt",-9} {bytes / gemv / 1e9,10:F1} {(double)rows * columns * tokens / gemm / 1e9,12:F1}");
            }
            if (PackedQuantMatrix.CanPack(type, columns) && PackedMatMul.HasFastPath(KernelIsa.Detected))
            {
                // The packed layout (the model's for Q4_0, and for Q8_0 with VNNI; PackedMatMul.Repacks): rows in groups of 8
                // for vpdpbusd or its AVX2 emulation; Q4_0 with
                // AVX-512 BW also through the 512-bit kernel ("packed", the model's path) next to the 256-bit one.
                using var packed = PackedQuantMatrix.Pack(type, w, rowBytes, rows, columns, pool);
                var paths = PackedMatMul.HasWidePath(type, columns, KernelIsa.Detected)
                    ? new[] { ("packed", KernelIsa.Detected), ("packed256", PackedMatMul.UsesVnni(KernelIsa.Detected) ? InstructionSet.AvxVnni : InstructionSet.Avx2) }
                    : [("packed", KernelIsa.Detected)];
                foreach (var (name, isa) in paths)
                {
                    var gemv = Time(() => PackedMatMul.Apply(packed, x, y, 1, isa, pool), 0.5);
                    var gemm = Time(() => PackedMatMul.Apply(packed, x, y, tokens, isa, pool), 1.0);
                    Console.WriteLine($"{type,-5} {name,-9} {bytes / gemv / 1e9,10:F1} {(double)rows * columns * tokens / gemm / 1e9,12:F1}");
                }
            }
            NativeMemory.AlignedFree(w);
        }
        NativeMemory.AlignedFree(x);
        NativeMemory.AlignedFree(y);
        return 0;
    }

    private static void FillWeights(GgmlType type, byte* w, long bytes, Random random)
    {
        var span = new Span<byte>(w, checked((int)bytes));
        random.NextBytes(span);
        if (type is GgmlType.F16 or GgmlType.BF16 or GgmlType.F32)
        {
            // Keep values finite: clear the top exponent bit of every element.
            var size = type == GgmlType.F32 ? 4 : 2;
            for (long i = size - 1; i < bytes; i += size) w[i] &= 0x3F;
            return;
        }
        var blockBytes = GgmlTypes.BlockBytes(type);
        // Every f16 scale of the block small and finite (random bytes there would be NaN, infinite or subnormal
        // now and then, which no real file holds and which some CPUs slow down on).
        foreach (var offset in HalfOffsets(type))
            for (long b = 0; b < bytes / blockBytes; b++) *(Half*)(w + b * blockBytes + offset) = (Half)0.01f;
    }

    /// <summary>Where each block of <paramref name="type"/> keeps its f16 scales (d, and dmin or m where it has one).</summary>
    private static int[] HalfOffsets(GgmlType type) => type switch
    {
        GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q4_1 or GgmlType.Q5_1 => [0, 2],
        GgmlType.Q6_K => [208],
        GgmlType.Q3_K => [108],
        GgmlType.Q2_K => [80, 82],
        _ => [0],
    };

    private static bool _cpuTime;

    /// <summary>Median seconds per call (wall clock, or process CPU time with --cpu-time on a busy machine).</summary>
    private static double Time(Action action, double budget)
    {
        action();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        var process = Process.GetCurrentProcess();
        while (total.Elapsed.TotalSeconds < budget || times.Count < 3)
        {
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            action();
            if (_cpuTime)
            {
                process.Refresh();
                times.Add((process.TotalProcessorTime - cpu).TotalSeconds);
            }
            else
            {
                times.Add(clock.Elapsed.TotalSeconds);
            }
        }
        times.Sort();
        return times[times.Count / 2];
    }
}

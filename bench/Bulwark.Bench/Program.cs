// Benchmarks: kernels, model and tokenizers compare Bulwark with an independent implementation in
// one run; engine, security, serve, redactor and soak measure the serving stack (CommandCatalog).
using Bulwark.Bench;

var serving = CommandCatalog.Root();
return args.FirstOrDefault() switch
{
    "kernels" => DirectCommand.Run("kernels", KernelBench.Run, args[1..], UsageText(), Console.Out, Console.Error),
    "model" => DirectCommand.Run("model", ModelBench.Run, args[1..], UsageText(), Console.Out, Console.Error),
    "tokenizers" => DirectCommand.Run("tokenizers", TokenizersBenchmark.Run, args[1..], UsageText(), Console.Out, Console.Error),
    "sampler" => DirectCommand.Run("sampler", SamplerBench.Run, args[1..], UsageText(), Console.Out, Console.Error),
    EngineRun.ChildCommand => EngineRun.RunChild(args[1..]),
    { } name when serving.Subcommands.Any(c => c.Name == name) => await serving.Parse(args).InvokeAsync(),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine(UsageText());
    return 2;
}

static string UsageText() => """
        usage: bench/run <benchmark> [options]
               (bench/run builds this project in Release when its sources changed; the same as
               dotnet run -c Release --project bench/Bulwark.Bench -- <benchmark> [options])
          kernels [--threads N] [--rows R] [--cols C] [--tokens T] [--types q8_0,q4_0,f16,bf16,f32] [--isas avx2,avx512] [--cpu-time]
                  matmul throughput of every weight type on every instruction set this CPU has, and of
                  the repacked VNNI layout ("packed"); --cpu-time times by process CPU time (a busy machine)
          model   [--models tiny,small,moe] [--dtypes f16,q8_0,q4_0] [--threads 2] [--reps 3]
                  [--prefill 512] [--decode 128] [--batch 8,32] [--dir /tmp/bulwark-bench] [--json]
                  ours vs llama.cpp (LLamaSharp) on the same synthetic GGUF file, alternating runs
                  in separate processes, medians; peak RSS of each process
          sampler [--vocab 32000] [--steps 2000]
                  microseconds per sampled token with top-k/top-p: the heap cut against the full sort it replaced
          tokenizers [--mb N] [--runs N] [--spm tokenizer.model]
                  encode MB/s, ours vs Microsoft.ML.Tokenizers (GPT-2, cl100k; SentencePiece with --spm)
          engine  --model PATH [--concurrency 1,8,32] [--prompt-tokens 128] [--gen-tokens 64] [--shared-prefix N] [--json] ...
                  the serving engine in-process: prefill and decode tokens/s, TTFT and ITL p50/p99, peak KV blocks
          security [--iterations 50000] [--warmup 5000] [--json]
                  overhead of authentication + quotas + audit on a trivial request, in-process, on vs off
          serve   --url URL [--concurrency 4] [--requests 64] [--stream] [--json] ...
                  load a running OpenAI-compatible server: requests/s, tokens/s, TTFT and ITL p50/p90/p99
          serve   --compare-security [--requests 1000] [--warmup N] [--instant-engine] [--json]
                  two servers in this process on the demo model, security on and off, p50/p99 and the difference
          redactor [--tokens 200000] [--rounds 5]
                  latency the output guard's streaming redactor adds per token (p50/p99)
          guard-model [--models qwen3-0.6b,tinyllama-1.1b] [--dtypes q8_0,q4_k_m] [--checks 20] [--response] [--dir /tmp/bulwark-bench]
                  latency of one guard-model check (p50/p95) on synthetic guard-shaped models; q4_k_m by llama.cpp's quantizer
          soak    [--duration 30m] [--interval 10s] [--warmup 20%] [--concurrency 8] [--json] ...
                  one bulwark serve process under mixed load (streams, disconnects, refusals): RSS, GC
                  heap and p50/p99 over time, and whether RSS stays flat within 5 % after warm-up
        bench/run <benchmark> --help: this text for kernels, model, tokenizers and sampler; every option for the others.
        """;

// Benchmarks: each subcommand compares Bulwark with an independent implementation in one run.
using Bulwark.Bench;

return args.FirstOrDefault() switch
{
    "kernels" => KernelBench.Run(args[1..]),
    "model" => ModelBench.Run(args[1..]),
    "tokenizers" => TokenizersBenchmark.Run(args[1..]),
    EngineRun.ChildCommand => EngineRun.RunChild(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: dotnet run -c Release --project bench/Bulwark.Bench -- <benchmark> [options]
          kernels [--threads N] [--rows R] [--cols C] [--tokens T] [--types q8_0,q4_0,f16,bf16,f32] [--cpu-time]
                  matmul throughput of every weight type on every instruction set this CPU has, and of
                  the repacked VNNI layout ("packed"); --cpu-time times by process CPU time (a busy machine)
          model   [--models tiny,small] [--dtypes f16,q8_0,q4_0] [--threads 2] [--reps 3]
                  [--prefill 512] [--decode 128] [--batch 8,32] [--dir /tmp/bulwark-bench] [--json]
                  ours vs llama.cpp (LLamaSharp) on the same synthetic GGUF file, alternating runs
                  in separate processes, medians; peak RSS of each process
          tokenizers [--mb N] [--runs N] [--spm tokenizer.model]
                  encode MB/s, ours vs Microsoft.ML.Tokenizers (GPT-2, cl100k; SentencePiece with --spm)
        """);
    return 2;
}

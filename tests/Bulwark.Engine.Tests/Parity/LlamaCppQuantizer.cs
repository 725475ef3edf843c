using LLama;
using LLama.Native;

namespace Bulwark.Engine.Tests.Parity;

/// <summary>
/// llama.cpp's own quantizer (<c>llama_model_quantize</c> through LLamaSharp 0.30.0): the files people
/// download are written by it, so the K-quant and legacy types are tested on its output.
/// </summary>
internal static class LlamaCppQuantizer
{
    private static readonly Lock Gate = new();

    /// <summary>Writes <paramref name="source"/> (an F32 GGUF) quantized as <paramref name="ftype"/>, the output head included.</summary>
    public static void Quantize(string source, string destination, LLamaFtype ftype)
    {
        lock (Gate)
        {
            // LLamaModelQuantizeParams.Default() throws DllNotFoundException unless a NativeApi call
            // has loaded llama.cpp first; quantize_output_tensor defaults to false (the head stays F32).
            NativeApi.llama_empty_call();
            if (!LLamaQuantizer.Quantize(source, destination, ftype, nthread: 2, allowRequantize: true, quantizeOutputTensor: true))
                throw new InvalidOperationException($"llama_model_quantize failed for {ftype}");
        }
    }
}

using Bulwark.Engine.Evaluation.Safety;
using Bulwark.Engine.Serving;
using Bulwark.Server;
using Bulwark.Server.Backends.Embedded;
using Bulwark.Server.Guardrails.GuardModels;
using Bulwark.Server.Registry;

namespace Bulwark.Cli.Safety;

/// <summary>
/// Chooses the judge of <c>models check</c>'s safety part: the guard model named by
/// <c>--guard-model</c> (a .gguf file or a Hugging Face folder, loaded on the embedded engine), else the
/// refusal detector (the weaker check).
/// </summary>
internal static class SafetyJudges
{
    public static ISafetyJudge Create(string? guardModel, string? guardFormat = null)
    {
        if (guardModel is null) return new RefusalDetector();
        GuardModelFormat format;
        try { format = GuardModelFormat.Parse(guardFormat ?? LlamaGuard3Format.Instance.Name, "--guard-format"); }
        catch (FormatException e) { throw new RegistryException(e.Message); }
        if (!File.Exists(guardModel) && !Directory.Exists(guardModel))
            throw new RegistryException($"--guard-model {guardModel}: no such file or folder (a .gguf file or a Hugging Face folder of the guard model)");
        try
        {
            var backend = EmbeddedModelLoader.Load(guardModel, "guard", null, new EngineOptions());
            return new GuardModelJudge(backend, format, Path.GetFileName(Path.TrimEndingDirectorySeparator(guardModel)));
        }
        catch (ServerConfigurationException e)
        {
            throw new RegistryException($"--guard-model {guardModel}: {string.Join("; ", e.Problems)}");
        }
    }
}

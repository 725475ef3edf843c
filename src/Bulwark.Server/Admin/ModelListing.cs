using System.Text.Json;
using System.Text.Json.Serialization;
using Bulwark.Server.Backends;
using Bulwark.Server.Models;
using Bulwark.Server.Registry;

namespace Bulwark.Server.Admin;

/// <summary>One registered version of a model: its manifest's facts, whether it is signed, and its quantization gate.</summary>
public sealed record ModelVersionView(
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("format")] string Format,
    [property: JsonPropertyName("architecture")] string? Architecture,
    [property: JsonPropertyName("quantization")] string? Quantization,
    [property: JsonPropertyName("parent")] string? Parent,
    [property: JsonPropertyName("files")] int Files,
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt,
    [property: JsonPropertyName("signed")] bool Signed,
    [property: JsonPropertyName("gate")] string Gate);

/// <summary>A registered model: the serving version, the history rollback walks back through, every version.</summary>
public sealed record RegisteredModelView(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("current")] string? Current,
    [property: JsonPropertyName("history")] IReadOnlyList<string> History,
    [property: JsonPropertyName("versions")] IReadOnlyList<ModelVersionView> Versions);

/// <summary>A model loaded in this server.</summary>
public sealed record LoadedModelView(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("version")] string? Version,
    [property: JsonPropertyName("origin")] string Origin,
    [property: JsonPropertyName("default")] bool Default,
    [property: JsonPropertyName("in_flight")] int InFlight,
    [property: JsonPropertyName("memory_bytes")] long MemoryBytes,
    [property: JsonPropertyName("loaded_at")] DateTimeOffset LoadedAt,
    [property: JsonPropertyName("context_length")] int ContextLength)
{
    public static LoadedModelView Of(ServedModel m, ModelLifecycle lifecycle) => new(m.Id, m.Info.Registered?.Version, m.Info.Origin,
        lifecycle.Models.List().FirstOrDefault() == m, m.InFlight, m.Info.MemoryBytes, m.Info.LoadedAt, m.Backend.Model.ContextLength);
}

/// <summary>Memory the loaded models take, against the budget (null: none).</summary>
public sealed record ModelMemoryView([property: JsonPropertyName("used_bytes")] long UsedBytes, [property: JsonPropertyName("budget_bytes")] long? BudgetBytes);

/// <summary>
/// What <c>GET /admin/models</c> answers and the console's models page shows: registered models with their versions
/// and verification facts, and what this server has loaded.
/// </summary>
public sealed record ModelListing(
    [property: JsonPropertyName("data")] IReadOnlyList<RegisteredModelView> Data,
    [property: JsonPropertyName("loaded")] IReadOnlyList<LoadedModelView> Loaded,
    [property: JsonPropertyName("retiring")] IReadOnlyList<LoadedModelView> Retiring,
    [property: JsonPropertyName("memory")] ModelMemoryView Memory)
{
    public static ModelListing Of(ModelLifecycle lifecycle)
    {
        var registry = lifecycle.Registry;
        var gate = new QuantizationGate(registry, TimeProvider.System);
        var registered = registry.Names().Select(name =>
        {
            var state = registry.State(name);
            return new RegisteredModelView(name, state.Current, state.History, registry.Versions(name).Select(m => new ModelVersionView(
                m.Version, m.Format, m.Architecture, m.Quantization, m.Parent, m.Files.Count, m.TotalBytes, m.Created, m.Signature is not null,
                JsonNamingPolicy.SnakeCaseLower.ConvertName(gate.Status(name, m).Status.ToString()))).ToList());
        }).ToList();
        var models = lifecycle.Models;
        return new ModelListing(registered, models.List().Select(m => LoadedModelView.Of(m, lifecycle)).ToList(),
            models.Retiring().Select(m => LoadedModelView.Of(m, lifecycle)).ToList(), new ModelMemoryView(models.MemoryBytes, lifecycle.MemoryBudget));
    }
}

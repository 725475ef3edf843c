namespace Bulwark.Engine.KvCache;

/// <summary>Copy-on-write: copy the first <paramref name="Slots"/> token slots of KV from one block to another.</summary>
public readonly record struct BlockCopy(int Source, int Destination, int Slots);

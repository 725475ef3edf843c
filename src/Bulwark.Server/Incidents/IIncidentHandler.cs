namespace Bulwark.Server.Incidents;

/// <summary>
/// A kind of incident event handled outside this folder (a model switch, say): the incident feed
/// hands each event of <see cref="Kind"/> to it, in log order. Keep it quick; long work belongs on a
/// queue of the handler's own, so key revocations behind it are not held up.
/// </summary>
public interface IIncidentHandler
{
    string Kind { get; }

    void Apply(string subject);
}

namespace Bulwark.Engine.Serving.Scheduling;

internal enum SequenceStatus
{
    Waiting,
    Running,
    Finished,
}
